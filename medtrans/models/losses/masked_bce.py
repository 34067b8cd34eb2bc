"""Binary cross-entropy for multi-label targets with masked (ignored) entries."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from medtrans.registry import MODELS

__all__ = ['MaskedBCEWithLogitsLoss']


@MODELS.register_module()
class MaskedBCEWithLogitsLoss(nn.Module):
    """Sigmoid binary cross-entropy that leaves out target entries equal to ``ignore_value``.

    Multi-label datasets mark labels that must not be learned (CheXpert's uncertain findings
    under the U-Ignore policy) with ``ignore_value`` in ``gt_score``; those entries contribute
    neither loss nor gradient. mmpretrain's ``CrossEntropyLoss(use_sigmoid=True)`` takes only
    per-sample weights, hence this loss.

    The reduction is that of mmpretrain's multi-label heads, which pass the batch size as
    ``avg_factor``: the sum over the kept entries divided by ``avg_factor``; without it, the mean
    over the kept entries. With nothing masked it equals mmpretrain's
    ``CrossEntropyLoss(use_sigmoid=True)`` exactly.

    Args:
        ignore_value (float): Target value of the entries to leave out. Defaults to -1.
        loss_weight (float): Factor on the loss. Defaults to 1.
    """

    def __init__(self, ignore_value: float = -1., loss_weight: float = 1.) -> None:
        super().__init__()
        if 0 <= ignore_value <= 1:
            raise ValueError(f'ignore_value must lie outside [0, 1], the range of real targets, '
                             f'got {ignore_value!r}')
        self.ignore_value = ignore_value
        self.loss_weight = loss_weight

    def forward(self,
                cls_score: torch.Tensor,
                target: torch.Tensor,
                avg_factor: Optional[float] = None,
                **kwargs) -> torch.Tensor:
        """Compute the loss.

        Args:
            cls_score (torch.Tensor): Logits ``(B, C)``.
            target (torch.Tensor): Targets ``(B, C)`` in [0, 1], or ``ignore_value``.
            avg_factor (float, optional): Divisor of the summed loss. Defaults to None (the
                number of kept entries).

        Returns:
            torch.Tensor: The scalar loss.
        """
        if cls_score.shape != target.shape:
            raise ValueError(f'MaskedBCEWithLogitsLoss: scores {tuple(cls_score.shape)} and '
                             f'targets {tuple(target.shape)} differ in shape')
        keep = target != self.ignore_value
        loss = F.binary_cross_entropy_with_logits(
            cls_score, torch.where(keep, target, torch.zeros_like(target)), reduction='none')
        total = (loss * keep).sum()
        divisor = keep.sum().clamp(min=1) if avg_factor is None else avg_factor
        return self.loss_weight * total / divisor
