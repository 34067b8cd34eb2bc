from .guarded_optim_wrapper import GuardedAmpOptimWrapper, GuardedOptimWrapper, NonFiniteError
from .summarized_constructor import SummarizedOptimWrapperConstructor

__all__ = ['GuardedOptimWrapper', 'GuardedAmpOptimWrapper', 'NonFiniteError',
           'SummarizedOptimWrapperConstructor']
