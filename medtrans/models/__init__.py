from .backbones import *  # noqa: F401,F403
from .backbones import __all__ as _backbones
from .heads import *  # noqa: F401,F403
from .heads import __all__ as _heads
from .losses import *  # noqa: F401,F403
from .losses import __all__ as _losses
from .necks import *  # noqa: F401,F403
from .necks import __all__ as _necks
from .selfsup import *  # noqa: F401,F403
from .selfsup import __all__ as _selfsup

__all__ = [*_backbones, *_heads, *_losses, *_necks, *_selfsup]
