"""Parameter schedulers that MMEngine lacks."""
from typing import Dict, Optional

from mmengine.optim import ReduceOnPlateauLR

from medtrans.registry import PARAM_SCHEDULERS

__all__ = ['AutoReduceOnPlateauLR']


@PARAM_SCHEDULERS.register_module()
class AutoReduceOnPlateauLR(ReduceOnPlateauLR):
    """MMEngine's ``ReduceOnPlateauLR`` that can monitor the headline validation metric.

    ``monitor='auto'`` is the first metric of the first validation, the rule MMEngine's
    ``CheckpointHook(save_best='auto')`` follows, so that a schedule base set once serves every
    dataset base: each medtrans metric reports its headline first (kappa, ROC-AUC, balanced
    recall, IoU). The resolved name is kept in the scheduler's state, so a resumed run monitors
    the same metric. Any other ``monitor`` behaves as in MMEngine.

    Args:
        monitor (str): ``'auto'`` or a metric name. Defaults to ``'auto'``.
        **kwargs: Arguments of :class:`mmengine.optim.ReduceOnPlateauLR`.
    """

    def __init__(self, optimizer, monitor: str = 'auto', **kwargs) -> None:
        super().__init__(optimizer, monitor=monitor, **kwargs)

    def step(self, metrics: Optional[Dict[str, float]] = None) -> None:
        if self.monitor == 'auto' and metrics:
            self.monitor = next(iter(metrics))
        super().step(metrics)
