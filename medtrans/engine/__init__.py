from .hooks import DINOHook, MetricsJsonHook, SafeResumeHook, SplitRecordHook
from .knn_loop import KNNLoopBase, KNNTestLoop, KNNValLoop, memory_dataloader_cfg
from .loops import IterBasedEpochsTrainLoop, ResumableIterBasedTrainLoop, epoch_length
from .optimizers import GuardedAmpOptimWrapper, GuardedOptimWrapper, NonFiniteError
from .runner import MedtransRunner, compile_modules, latest_checkpoint
from .schedulers import AutoReduceOnPlateauLR

__all__ = ['MetricsJsonHook', 'SafeResumeHook', 'GuardedOptimWrapper', 'GuardedAmpOptimWrapper',
           'NonFiniteError', 'DINOHook', 'ResumableIterBasedTrainLoop', 'IterBasedEpochsTrainLoop',
           'epoch_length', 'MedtransRunner', 'compile_modules', 'latest_checkpoint',
           'AutoReduceOnPlateauLR', 'SplitRecordHook', 'KNNLoopBase', 'KNNValLoop', 'KNNTestLoop',
           'memory_dataloader_cfg']
