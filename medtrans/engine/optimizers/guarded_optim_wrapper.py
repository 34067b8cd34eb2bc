"""An optimizer wrapper that never lets a non-finite loss or gradient reach the weights."""
import logging
from typing import Dict, Optional

import torch
import torch.distributed as dist
from mmengine.logging import MessageHub, print_log
from mmengine.optim import OptimWrapper

from medtrans.registry import OPTIM_WRAPPERS

__all__ = ['GuardedOptimWrapper', 'NonFiniteError']


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or infinite loss or gradient."""


@OPTIM_WRAPPERS.register_module()
class GuardedOptimWrapper(OptimWrapper):
    """:class:`mmengine.optim.OptimWrapper` that checks the loss before ``backward`` and the
    gradients before ``step``.

    On a non-finite value the update is not applied, so the weights, the optimizer state and
    every checkpoint written so far stay good. Then, by ``on_non_finite``:

    * ``'raise'``: stop with :class:`NonFiniteError` naming the iteration; the last checkpoint
      in the work dir is the last good state.
    * ``'skip'``: drop this update, log a warning and go on; after ``max_consecutive_skips``
      skipped updates in a row, raise as above.

    Under DDP every rank takes the same decision (the loss check is all-reduced before
    ``backward``, whose gradient all-reduce every rank must join).

    Args:
        on_non_finite (str): 'raise' or 'skip'. Defaults to 'raise'.
        max_consecutive_skips (int): Skips in a row before giving up. Defaults to 10.
        **kwargs: Arguments of :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, on_non_finite: str = 'raise', max_consecutive_skips: int = 10,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if on_non_finite not in ('raise', 'skip'):
            raise ValueError(f"on_non_finite must be 'raise' or 'skip', got {on_non_finite!r}")
        self.on_non_finite = on_non_finite
        self.max_consecutive_skips = max_consecutive_skips
        self.consecutive_skips = 0

    def update_params(self,
                      loss: torch.Tensor,
                      step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        if not _all_ranks_finite(loss.detach()):
            self._reject('loss', float(loss.detach()), zero_kwargs)
            return
        self.backward(self.scale_loss(loss))
        if not self.should_update():
            return
        if not _all_ranks_finite(self._grad_amax()):
            self._reject('gradient', None, zero_kwargs)
            return
        self.step(**(step_kwargs or {}))
        self.zero_grad(**(zero_kwargs or {}))
        self.consecutive_skips = 0

    def _grad_amax(self) -> torch.Tensor:
        grads = [p.grad.detach().abs().amax() for group in self.optimizer.param_groups
                 for p in group['params'] if p.grad is not None]
        return torch.stack(grads).amax() if grads else torch.zeros(())

    def _reject(self, what: str, value: Optional[float], zero_kwargs: Optional[Dict]) -> None:
        self.zero_grad(**(zero_kwargs or {}))
        iteration = MessageHub.get_current_instance().get_info('iter', -1) + 1
        shown = f' ({value})' if value is not None else ''
        message = f'Non-finite {what}{shown} at iteration {iteration}; the update was not applied.'
        self.consecutive_skips += 1
        if self.on_non_finite == 'raise' or self.consecutive_skips > self.max_consecutive_skips:
            raise NonFiniteError(
                f'{message} Training stopped; the latest checkpoint in the work dir holds the '
                'last good state (resume with --resume).')
        print_log(f'{message} Skipped ({self.consecutive_skips} in a row).', logger='current',
                  level=logging.WARNING)


def _all_ranks_finite(value: torch.Tensor) -> bool:
    finite = torch.isfinite(value).all().to(torch.float32).reshape(1)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())
