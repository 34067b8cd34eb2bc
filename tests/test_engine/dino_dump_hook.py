"""A hook for the DDP tests of DINO: each process saves its teacher and centre at the end."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from medtrans.registry import HOOKS


def _model(runner):
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


@HOOKS.register_module()
class DumpDINOStateHook(Hook):
    """Write ``rank<r>.pth`` with this process's teacher state dict and loss centre at the end,
    and the whole model's state dict (student, teacher, centre) at the start (``initial``) and
    at the end (``model``)."""

    def before_train(self, runner) -> None:
        self.initial = {k: v.clone() for k, v in _model(runner).state_dict().items()}

    def after_train(self, runner) -> None:
        model = _model(runner)
        torch.save(dict(teacher=model.teacher.state_dict(), center=model.loss_module.center,
                        initial=self.initial, model=model.state_dict()),
                   osp.join(runner.work_dir, f'rank{get_rank()}.pth'))
