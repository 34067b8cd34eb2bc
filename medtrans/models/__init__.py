from .backbones import *  # noqa: F401,F403
from .backbones import __all__ as _backbones
from .losses import *  # noqa: F401,F403
from .losses import __all__ as _losses
from .necks import *  # noqa: F401,F403
from .necks import __all__ as _necks

__all__ = [*_backbones, *_losses, *_necks]
