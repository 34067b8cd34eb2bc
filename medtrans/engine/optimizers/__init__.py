from .guarded_optim_wrapper import GuardedAmpOptimWrapper, GuardedOptimWrapper, NonFiniteError

__all__ = ['GuardedOptimWrapper', 'GuardedAmpOptimWrapper', 'NonFiniteError']
