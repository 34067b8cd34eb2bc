from .hooks import MetricsJsonHook, SafeResumeHook
from .optimizers import GuardedAmpOptimWrapper, GuardedOptimWrapper, NonFiniteError

__all__ = ['MetricsJsonHook', 'SafeResumeHook', 'GuardedOptimWrapper', 'GuardedAmpOptimWrapper',
           'NonFiniteError']
