from .hooks import MetricsJsonHook, SafeResumeHook
from .optimizers import GuardedOptimWrapper, NonFiniteError

__all__ = ['MetricsJsonHook', 'SafeResumeHook', 'GuardedOptimWrapper', 'NonFiniteError']
