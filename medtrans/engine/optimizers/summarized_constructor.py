"""MMEngine's optimizer wrapper constructor, with one log line where it logs one per parameter."""
import re
from collections import Counter

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

from medtrans.registry import OPTIM_WRAPPER_CONSTRUCTORS
from medtrans.utils.log_filters import held_back_logs

__all__ = ['SummarizedOptimWrapperConstructor']

_PER_PARAMETER = re.compile(r'^(paramwise_options -- |.* is skipped since its requires_grad=False)')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SummarizedOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """MMEngine's ``DefaultOptimWrapperConstructor``, logging a summary instead of a line per
    parameter.

    With a ``paramwise_cfg`` MMEngine logs each option of each parameter
    (``paramwise_options -- teacher.head.mlp.0.bias:weight_decay=0.0``) and each frozen one
    (``... is skipped since its requires_grad=False``): a DINO run's log opened with 262 such
    lines. They are held back, and one line says how many tensors the optimizer updates, under
    which options, and which frozen ones it leaves (by their first name part). Config:
    ``optim_wrapper = dict(constructor='SummarizedOptimWrapperConstructor', ...)``.
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        with held_back_logs(_PER_PARAMETER.match):
            optim_wrapper = super().__call__(model)
        model = getattr(model, 'module', model)
        param_groups = optim_wrapper.optimizer.param_groups
        # The options that differ between groups: the others are the optimizer's own.
        varying = sorted({key for group in param_groups for key, value in group.items()
                          if key != 'params' and any(other.get(key) != value
                                                     for other in param_groups)})
        groups = Counter(
            ', '.join(f'{key}={group.get(key)}' for key in varying)
            for group in param_groups for _ in group['params'])
        frozen = Counter('.'.join(name.split('.')[:2]) for name, param in model.named_parameters()
                         if not param.requires_grad)
        updated = ', '.join(f'{count} with {options or "the defaults"}'
                            for options, count in groups.most_common())
        line = (f'{type(optim_wrapper.optimizer).__name__} updates '
                f'{sum(groups.values())} parameter tensors: {updated}')
        if frozen:
            line += (f'; {sum(frozen.values())} frozen (requires_grad=False) left out: ' +
                     ', '.join(f'{prefix}.* {count}' for prefix, count in frozen.most_common()))
        print_log(line, logger='current')
        return optim_wrapper
