"""DINO's per-iteration schedules and gradient rules: teacher temperature, teacher momentum,
last-layer freezing and per-parameter gradient clipping."""
import math
from typing import List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from medtrans.models.selfsup import DINO
from medtrans.registry import HOOKS
from medtrans.utils.upstream import accumulative_counts, foreach_mul_, foreach_norm

from ..loops import epoch_length

__all__ = ['DINOHook', 'teacher_temp_at', 'teacher_momentum_at', 'clip_grads_per_param_']


def teacher_temp_at(iteration: int, iters_per_epoch: int, warmup_teacher_temp: float,
                    teacher_temp: float, warmup_epochs: int) -> float:
    """DINO's teacher temperature: linear over the warm-up epochs, one value per epoch.

    As DINO's ``np.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs)[epoch]``:
    ``warmup_teacher_temp`` in the first epoch, ``teacher_temp`` in epoch ``warmup_epochs - 1``
    and after.

    Args:
        iteration (int): Training iteration, from 0.
        iters_per_epoch (int): Iterations per epoch.
        warmup_teacher_temp (float): Temperature of the first epoch.
        teacher_temp (float): Temperature after the warm-up.
        warmup_epochs (int): Epochs of the warm-up.

    Returns:
        float: The temperature.
    """
    epoch = iteration // iters_per_epoch
    if epoch >= warmup_epochs:
        return teacher_temp
    if warmup_epochs == 1:
        return warmup_teacher_temp
    return warmup_teacher_temp + (teacher_temp - warmup_teacher_temp) * epoch / (warmup_epochs - 1)


def teacher_momentum_at(iteration: int, max_iters: int, momentum: float) -> float:
    """DINO's teacher momentum: cosine from ``momentum`` at iteration 0 towards 1.

    ``1 - (1 - momentum) * (1 + cos(pi * iteration / max_iters)) / 2``, as DINO's
    ``cosine_scheduler(momentum, 1, epochs, niter_per_ep)[iteration]``.
    """
    return 1 - (1 - momentum) * (1 + math.cos(math.pi * iteration / max_iters)) / 2


def clip_grads_per_param_(grads: List[torch.Tensor], max_norm: float) -> None:
    """Scale each gradient whose L2 norm exceeds ``max_norm`` down to it, in place.

    DINO clips every parameter's gradient on its own (``utils.clip_gradients``: a factor
    ``max_norm / (norm + 1e-6)`` where below 1), not the global norm. Done on the gradients'
    device without host synchronisation.
    """
    if not grads:
        return
    norms = torch.stack(foreach_norm(grads))
    scales = norms.add_(1e-6).reciprocal_().mul_(max_norm).clamp_(max=1.0)
    foreach_mul_(grads, list(scales.unbind()))


@HOOKS.register_module()
class DINOHook(Hook):
    """Drive a :class:`~medtrans.models.selfsup.DINO` model's schedules, per iteration.

    - before each iteration: the teacher temperature (:func:`teacher_temp_at`, by epoch);
    - at each optimizer step (a step pre-hook on the runner's optimizer): per-parameter
      gradient clipping to ``clip_grad`` (:func:`clip_grads_per_param_`), then, during the first
      ``freeze_last_layer_epochs`` epochs, the gradients of the student head's last layer are
      dropped, so the optimizer leaves it, its moments and its step count untouched (DINO's
      ``cancel_gradients_last_layer``);
    - after each iteration (after the optimizer step): the teacher's EMA update with the
      momentum of :func:`teacher_momentum_at` (cosine from ``momentum`` to 1 over the run).

    Epochs are :func:`~medtrans.engine.loops.epoch_length` iterations long; the run is
    ``runner.max_iters`` long. The values are functions of the iteration only, so a resumed run
    continues them exactly. The learning rate and weight decay are MMEngine parameter
    schedulers of the config. ``teacher_temp``, ``momentum`` and ``weight_decay`` are logged.

    Args:
        warmup_teacher_temp (float): Teacher temperature of the first epoch. Defaults to 0.04.
        teacher_temp (float): Teacher temperature after the warm-up. Defaults to 0.07.
        warmup_teacher_temp_epochs (int): Warm-up epochs of the temperature. Defaults to 30
            (the DINO paper's; its code defaults to no warm-up at 0.04).
        momentum (float): Teacher momentum at the start. Defaults to 0.99 (the study's; DINO's
            code defaults to 0.996).
        freeze_last_layer_epochs (int): Epochs during which the last layer is not trained.
            Defaults to 1.
        clip_grad (float, optional): Per-parameter gradient norm limit; None for no clipping.
            Defaults to 3.0.
    """

    # Before CheckpointHook (VERY_LOW) in after_train_iter: a checkpoint holds the updated teacher.
    priority = 'NORMAL'

    def __init__(self,
                 warmup_teacher_temp: float = 0.04,
                 teacher_temp: float = 0.07,
                 warmup_teacher_temp_epochs: int = 30,
                 momentum: float = 0.99,
                 freeze_last_layer_epochs: int = 1,
                 clip_grad: Optional[float] = 3.0) -> None:
        if warmup_teacher_temp <= 0 or teacher_temp <= 0:
            raise ValueError('DINOHook: teacher temperatures must be > 0, got '
                             f'{warmup_teacher_temp!r} and {teacher_temp!r}')
        if warmup_teacher_temp_epochs < 0 or freeze_last_layer_epochs < 0:
            raise ValueError('DINOHook: warmup_teacher_temp_epochs and freeze_last_layer_epochs '
                             f'must be >= 0, got {warmup_teacher_temp_epochs!r} and '
                             f'{freeze_last_layer_epochs!r}')
        if not 0 <= momentum <= 1:
            raise ValueError(f'DINOHook: momentum must be in [0, 1], got {momentum!r}')
        if clip_grad is not None and clip_grad <= 0:
            raise ValueError(f'DINOHook: clip_grad must be > 0 or None, got {clip_grad!r}')
        self.warmup_teacher_temp = warmup_teacher_temp
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp_epochs = warmup_teacher_temp_epochs
        self.momentum = momentum
        self.freeze_last_layer_epochs = freeze_last_layer_epochs
        self.clip_grad = clip_grad
        self._model: Optional[DINO] = None
        self._iters_per_epoch = 1
        self._freeze_last_layer = False
        self._step_hook = None

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not isinstance(model, DINO):
            raise TypeError(f'DINOHook drives a DINO model; the runner\'s model is a '
                            f'{type(model).__name__}')
        if not hasattr(runner.optim_wrapper, 'optimizer'):
            raise TypeError('DINOHook needs one optimizer; the runner has a '
                            f'{type(runner.optim_wrapper).__name__}')
        if accumulative_counts(runner.optim_wrapper) != 1:
            raise ValueError('DINOHook: gradient accumulation (accumulative_counts) is not '
                             'supported: the teacher and the centre would move at every '
                             'micro-batch instead of every optimizer step')
        self._model = model
        self._iters_per_epoch = epoch_length(runner.train_dataloader)
        self._step_hook = runner.optim_wrapper.optimizer.register_step_pre_hook(
            self._before_optimizer_step)

    def after_train(self, runner) -> None:
        if self._step_hook is not None:
            self._step_hook.remove()
            self._step_hook = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        iteration = runner.iter
        temp = teacher_temp_at(iteration, self._iters_per_epoch, self.warmup_teacher_temp,
                               self.teacher_temp, self.warmup_teacher_temp_epochs)
        self._model.teacher_temp = temp
        self._freeze_last_layer = (
            iteration < self.freeze_last_layer_epochs * self._iters_per_epoch)
        decays = [group['weight_decay'] for group in runner.optim_wrapper.param_groups]
        runner.message_hub.update_scalar('train/teacher_temp', temp)
        runner.message_hub.update_scalar('train/weight_decay', max(decays, default=0.))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        momentum = teacher_momentum_at(runner.iter, runner.max_iters, self.momentum)
        self._model.update_teacher(momentum)
        runner.message_hub.update_scalar('train/momentum', momentum)

    def _before_optimizer_step(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        if self.clip_grad is not None:
            clip_grads_per_param_([p.grad for group in optimizer.param_groups
                                   for p in group['params'] if p.grad is not None],
                                  self.clip_grad)
        if self._freeze_last_layer:
            for param in self._model.student_last_layer_parameters():
                param.grad = None
