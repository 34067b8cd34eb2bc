"""Masked multi-label BCE: equal to mmpretrain's and PyTorch's losses on the kept entries."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.models.losses import CrossEntropyLoss

from medtrans.models.losses import MaskedBCEWithLogitsLoss


def _inputs():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 5, generator=g)
    target = (torch.rand(4, 5, generator=g) > 0.5).float()
    return scores, target


def test_without_masked_entries_equals_mmpretrain_sigmoid_cross_entropy():
    scores, target = _inputs()
    ours = MaskedBCEWithLogitsLoss()(scores, target, avg_factor=4)
    theirs = CrossEntropyLoss(use_sigmoid=True)(scores, target, avg_factor=4)
    assert torch.equal(ours, theirs)


def test_masked_entries_give_no_loss_and_no_gradient():
    scores, target = _inputs()
    target[0, 1] = target[2, 3] = target[3, 0] = -1
    scores.requires_grad_(True)
    loss = MaskedBCEWithLogitsLoss()(scores, target)
    keep = target != -1
    expected = F.binary_cross_entropy_with_logits(scores[keep], target[keep])
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-7)
    loss.backward()
    assert not scores.grad[~keep].any()
    assert scores.grad[keep].all()


def test_all_masked_gives_zero_and_bad_input_is_named():
    scores, _ = _inputs()
    assert MaskedBCEWithLogitsLoss()(scores, torch.full_like(scores, -1.)).item() == 0
    with pytest.raises(ValueError, match='differ in shape'):
        MaskedBCEWithLogitsLoss()(scores, torch.zeros(4, 4))
    with pytest.raises(ValueError, match='ignore_value'):
        MaskedBCEWithLogitsLoss(ignore_value=0)
