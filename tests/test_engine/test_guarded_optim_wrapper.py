"""A non-finite loss or gradient never reaches the weights."""
import pytest
import torch
from mmengine.logging import MessageHub
from torch import nn

from medtrans.engine.optimizers import GuardedOptimWrapper, NonFiniteError


def _wrapper(**kwargs):
    model = nn.Linear(3, 1)
    optim = GuardedOptimWrapper(optimizer=torch.optim.Adam(model.parameters(), lr=0.1), **kwargs)
    return model, optim


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_finite_loss_updates_weights():
    model, optim = _wrapper()
    before = _weights(model)
    optim.update_params(model(torch.ones(2, 3)).sum())
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_nan_loss_raises_naming_iteration_and_keeps_weights():
    MessageHub.get_current_instance().update_info('iter', 41)
    model, optim = _wrapper()
    before = _weights(model)
    with pytest.raises(NonFiniteError, match='iteration 42'):
        optim.update_params(model(torch.ones(2, 3)).sum() * float('nan'))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_inf_gradient_is_caught_before_step():
    model, optim = _wrapper()
    before = _weights(model)
    # Finite loss (0), infinite gradient: d sqrt(x) / dx at x = 0.
    loss = torch.sqrt(model.weight - model.weight.detach()).sum()
    assert torch.isfinite(loss)
    with pytest.raises(NonFiniteError, match='gradient'):
        optim.update_params(loss)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_skip_mode_skips_then_gives_up():
    model, optim = _wrapper(on_non_finite='skip', max_consecutive_skips=2)
    before = _weights(model)
    for _ in range(2):
        optim.update_params(model(torch.ones(1, 3)).sum() * float('inf'))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    optim.update_params(model(torch.ones(1, 3)).sum())
    assert optim.consecutive_skips == 0
    for _ in range(2):
        optim.update_params(model(torch.ones(1, 3)).sum() * float('nan'))
    with pytest.raises(NonFiniteError):
        optim.update_params(model(torch.ones(1, 3)).sum() * float('nan'))
