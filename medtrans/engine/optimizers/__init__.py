from .guarded_optim_wrapper import GuardedOptimWrapper, NonFiniteError

__all__ = ['GuardedOptimWrapper', 'NonFiniteError']
