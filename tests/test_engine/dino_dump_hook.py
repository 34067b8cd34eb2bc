"""A hook for the DDP test of DINO: each process saves its teacher and centre at the end."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from medtrans.registry import HOOKS


@HOOKS.register_module()
class DumpDINOStateHook(Hook):
    """Write ``rank<r>.pth`` with the teacher's state dict and the loss centre of this process."""

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save(dict(teacher=model.teacher.state_dict(), center=model.loss_module.center),
                   osp.join(runner.work_dir, f'rank{get_rank()}.pth'))
