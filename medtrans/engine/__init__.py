from .hooks import DINOHook, MetricsJsonHook, SafeResumeHook
from .loops import IterBasedEpochsTrainLoop, NoPauseIterBasedTrainLoop, epoch_length
from .optimizers import GuardedAmpOptimWrapper, GuardedOptimWrapper, NonFiniteError

__all__ = ['MetricsJsonHook', 'SafeResumeHook', 'GuardedOptimWrapper', 'GuardedAmpOptimWrapper',
           'NonFiniteError', 'DINOHook', 'NoPauseIterBasedTrainLoop', 'IterBasedEpochsTrainLoop',
           'epoch_length']
