from . import functional
from .metrics import *  # noqa: F401,F403
from .metrics import __all__ as _metrics

__all__ = ['functional', *_metrics]
