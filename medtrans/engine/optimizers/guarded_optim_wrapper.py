"""Optimizer wrappers that never let a non-finite loss or gradient reach the weights."""
import logging
from typing import Dict, Optional

import torch
import torch.distributed as dist
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper

from medtrans.registry import OPTIM_WRAPPERS
from medtrans.utils.upstream import amp_static_loss_scale, foreach_norm

__all__ = ['GuardedOptimWrapper', 'GuardedAmpOptimWrapper', 'NonFiniteError']


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or infinite loss or gradient."""


class _NonFiniteGuard:
    """The guard shared by the plain and the AMP wrapper (see :class:`GuardedOptimWrapper`).

    MMEngine's wrappers have no such check; this is written here. Subclasses define
    :meth:`_grads_ready` (called once per update, before the gradients are checked) and
    :meth:`_apply_update` (the update itself, or its refusal when ``ok`` is False).
    """

    def _init_guard(self, on_non_finite: str, max_consecutive_skips: int) -> None:
        if on_non_finite not in ('raise', 'skip'):
            raise ValueError(f"on_non_finite must be 'raise' or 'skip', got {on_non_finite!r}")
        if max_consecutive_skips < 0:
            raise ValueError(
                f'max_consecutive_skips must be >= 0, got {max_consecutive_skips!r}')
        self.on_non_finite = on_non_finite
        self.max_consecutive_skips = max_consecutive_skips
        self.consecutive_skips = 0
        # Number of micro-batches of the current accumulation window whose loss was not
        # finite, kept on the loss's device so that no micro-batch waits for the host.
        self._bad_losses: Optional[torch.Tensor] = None

    def update_params(self,
                      loss: torch.Tensor,
                      step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        bad = (~torch.isfinite(loss.detach())).any().to(torch.float32)
        self._bad_losses = bad if self._bad_losses is None else self._bad_losses + bad
        # Backward runs whatever the loss: under DDP every rank must join the gradient
        # all-reduce, and the whole window's update is refused below if anything was bad.
        self.backward(self.scale_loss(loss))
        if not self.should_update():
            return
        bad_losses, bad_grads = self._check_window()
        self._bad_losses = None
        ok = not (bad_losses or bad_grads)
        self._apply_update(ok, step_kwargs or {})
        self.zero_grad(**(zero_kwargs or {}))
        if ok:
            self.consecutive_skips = 0
        else:
            self._refused(bad_losses > 0)

    def _check_window(self):
        """Non-finite losses and gradients of the window, agreed by every rank.

        The update's only host synchronisation (and, under DDP, its only extra all-reduce, of
        two numbers): gradients are equal on every rank after DDP's all-reduce, but losses are
        per rank.
        """
        self._grads_ready()
        grads = [p.grad for group in self.optimizer.param_groups for p in group['params']
                 if p.grad is not None]
        flags = torch.zeros(2, device=self._bad_losses.device)
        flags[0] = self._bad_losses
        if grads:
            amax = torch.stack(foreach_norm(grads, float('inf'))).amax()
            flags[1] = (~torch.isfinite(amax)).to(flags.device, torch.float32)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(flags)
        bad_losses, bad_grads = flags.tolist()
        return bad_losses, bad_grads

    def _refused(self, loss_was_bad: bool) -> None:
        iteration = MessageHub.get_current_instance().get_info('iter', -1) + 1
        what = 'loss' if loss_was_bad else 'gradient'
        message = f'Non-finite {what} at iteration {iteration}; the update was not applied.'
        self.consecutive_skips += 1
        tolerated = self.on_non_finite == 'skip' or (not loss_was_bad and self._scaler_backs_off)
        if not tolerated or self.consecutive_skips > self.max_consecutive_skips:
            raise NonFiniteError(
                f'{message} Training stopped after {self.consecutive_skips} refused update(s) '
                'in a row; the latest checkpoint in the work dir holds the last good state '
                '(resume with --resume).')
        print_log(f'{message} Skipped ({self.consecutive_skips} in a row).', logger='current',
                  level=logging.WARNING)

    _scaler_backs_off = False

    def _grads_ready(self) -> None:
        pass

    def _apply_update(self, ok: bool, step_kwargs: Dict) -> None:
        if ok:
            self.step(**step_kwargs)


@OPTIM_WRAPPERS.register_module()
class GuardedOptimWrapper(_NonFiniteGuard, OptimWrapper):
    """:class:`mmengine.optim.OptimWrapper` that refuses updates with a non-finite loss or
    gradient.

    At each update (once per ``accumulative_counts`` micro-batches) the losses of the window's
    micro-batches and the accumulated gradients are checked; if any is NaN or infinite, the
    update is not applied and the window's gradients are dropped, so the weights, the optimizer
    state and every checkpoint written so far stay good, and the next window starts clean. Then,
    by ``on_non_finite``:

    * ``'raise'``: stop with :class:`NonFiniteError` naming the iteration; the last checkpoint
      in the work dir is the last good state.
    * ``'skip'``: log a warning and go on; after ``max_consecutive_skips`` refused updates in a
      row, raise as above.

    Cost: one host synchronisation per update (none on the micro-batches in between) and, under
    DDP, one all-reduce of two numbers, so every rank takes the same decision.

    Args:
        on_non_finite (str): 'raise' or 'skip'. Defaults to 'raise'.
        max_consecutive_skips (int): Refused updates in a row tolerated before giving up.
            Defaults to 10.
        **kwargs: Arguments of :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, on_non_finite: str = 'raise', max_consecutive_skips: int = 10,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_guard(on_non_finite, max_consecutive_skips)


def _accelerated() -> bool:
    """Whether MMEngine's AMP wrapper accepts this machine (its own check: a GPU, NPU, MLU or
    MUSA device)."""
    found = amp_optimizer_wrapper
    return (found.is_cuda_available() or found.is_npu_available() or found.is_mlu_available()
            or found.is_musa_available())


@OPTIM_WRAPPERS.register_module()
class GuardedAmpOptimWrapper(_NonFiniteGuard, AmpOptimWrapper):
    """:class:`mmengine.optim.AmpOptimWrapper` with the guard of :class:`GuardedOptimWrapper`.

    With a dynamic loss scale, a non-finite gradient under a finite loss is the scaler's
    overflow signal: the update is skipped and the scale lowered, as ``GradScaler.step`` does,
    in either mode. If the gradients stay non-finite for more than ``max_consecutive_skips``
    updates in a row (lowering the scale did not help), the run stops with
    :class:`NonFiniteError` naming the iteration. A non-finite loss is handled by
    ``on_non_finite`` as without AMP.

    The gradients are unscaled once (``GradScaler.unscale_``) and checked by the guard, which
    then steps the optimizer or not and updates the scale; ``GradScaler.step`` would check
    them a second time with a second host synchronisation.

    In bfloat16 (``dtype='bfloat16'``) there is no loss scaling, which float32's range makes
    unnecessary: a non-finite gradient is then handled by ``on_non_finite`` like a non-finite
    loss. On CPUs, which MMEngine's wrapper refuses, it trains in bfloat16, the only autocast
    type of CPUs (e.g. Intel AMX).

    Args:
        on_non_finite (str): 'raise' or 'skip'. Defaults to 'raise'.
        max_consecutive_skips (int): Refused updates in a row tolerated before giving up.
            Defaults to 10.
        **kwargs: Arguments of :class:`mmengine.optim.AmpOptimWrapper`.
    """

    def __init__(self, on_non_finite: str = 'raise', max_consecutive_skips: int = 10,
                 **kwargs) -> None:
        if _accelerated():
            super().__init__(**kwargs)
            self._static_loss_scale = amp_static_loss_scale(self)
        else:
            dtype = kwargs.pop('dtype', None)
            if dtype not in ('bfloat16', torch.bfloat16):
                raise ValueError('GuardedAmpOptimWrapper on a CPU trains in bfloat16, the only '
                                 f"autocast type of CPUs: set dtype='bfloat16', got {dtype!r}.")
            kwargs.pop('loss_scale', None)
            kwargs.pop('use_fsdp', None)
            OptimWrapper.__init__(self, **kwargs)  # AmpOptimWrapper's asserts CUDA
            self._static_loss_scale = None
            self.cast_dtype = torch.bfloat16
        if self.cast_dtype == torch.bfloat16:
            # No loss scaling: bfloat16 has float32's range, so a non-finite gradient is an
            # error for the guard, never a scale overflow to skip.
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
            self.loss_scaler = torch.amp.GradScaler(device, enabled=False)
        self._init_guard(on_non_finite, max_consecutive_skips)

    @property
    def _scaler_backs_off(self) -> bool:
        return self.loss_scaler.is_enabled() and self._static_loss_scale is None

    def _grads_ready(self) -> None:
        self.loss_scaler.unscale_(self.optimizer)

    def _apply_update(self, ok: bool, step_kwargs: Dict) -> None:
        if ok:
            # The gradients are unscaled: the plain wrapper's step (clipping, optimizer step).
            OptimWrapper.step(self, **step_kwargs)
        self.loss_scaler.update(self._static_loss_scale)
