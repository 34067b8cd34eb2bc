"""A non-finite loss or gradient never reaches the weights, with and without AMP, with and
without gradient accumulation, at one host synchronisation per update."""
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper
from torch import nn

from medtrans.engine.optimizers import (
    GuardedAmpOptimWrapper,
    GuardedOptimWrapper,
    NonFiniteError,
)
from medtrans.engine.optimizers import guarded_optim_wrapper as guarded_module

NAN, INF = float('nan'), float('inf')


def _model():
    torch.manual_seed(0)
    return nn.Linear(3, 1)


def _wrapper(model, cls=GuardedOptimWrapper, optimizer=torch.optim.Adam, **kwargs):
    return cls(optimizer=optimizer(model.parameters(), lr=0.1), **kwargs)


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _loss(model, factor=1.0, seed=0):
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(seed))
    return model(x).sum() * factor


def test_finite_updates_equal_mmengine_optim_wrapper():
    guarded_model, plain_model = _model(), _model()
    guarded, plain = _wrapper(guarded_model), _wrapper(plain_model, OptimWrapper)
    for seed in range(3):
        guarded.update_params(_loss(guarded_model, seed=seed))
        plain.update_params(_loss(plain_model, seed=seed))
    assert _same(_weights(guarded_model), _weights(plain_model))


def test_nan_loss_raises_naming_iteration_and_keeps_weights():
    MessageHub.get_current_instance().update_info('iter', 41)
    model = _model()
    optim = _wrapper(model)
    before = _weights(model)
    with pytest.raises(NonFiniteError, match='loss at iteration 42'):
        optim.update_params(_loss(model, NAN))
    assert _same(before, _weights(model))
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_inf_gradient_is_caught_before_step():
    model = _model()
    optim = _wrapper(model)
    before = _weights(model)
    # Finite loss (0), infinite gradient: d sqrt(x) / dx at x = 0.
    loss = torch.sqrt(model.weight - model.weight.detach()).sum()
    assert torch.isfinite(loss)
    with pytest.raises(NonFiniteError, match='gradient'):
        optim.update_params(loss)
    assert _same(before, _weights(model))


def test_skip_mode_skips_then_gives_up():
    model = _model()
    optim = _wrapper(model, on_non_finite='skip', max_consecutive_skips=2)
    before = _weights(model)
    for _ in range(2):
        optim.update_params(_loss(model, INF))
    assert _same(before, _weights(model))
    optim.update_params(_loss(model))
    assert optim.consecutive_skips == 0
    for _ in range(2):
        optim.update_params(_loss(model, NAN))
    with pytest.raises(NonFiniteError, match='3 refused update'):
        optim.update_params(_loss(model, NAN))


def test_accumulation_drops_the_bad_window_and_keeps_the_next_whole():
    # Micro-batches [ok, NaN | ok, ok] with accumulative_counts=2: the first update is refused
    # (its good micro-batch included), the second uses both of its micro-batches at full weight,
    # exactly as an unguarded wrapper fed only the second window.
    model, reference = _model(), _model()
    optim = _wrapper(model, on_non_finite='skip', accumulative_counts=2)
    ref_optim = _wrapper(reference, OptimWrapper, accumulative_counts=2)
    before = _weights(model)
    optim.update_params(_loss(model, seed=1))
    optim.update_params(_loss(model, NAN, seed=2))
    assert _same(before, _weights(model))
    assert optim.consecutive_skips == 1 and optim._inner_count == 2
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    for seed in (3, 4):
        optim.update_params(_loss(model, seed=seed))
        ref_optim.update_params(_loss(reference, seed=seed))
    assert optim.consecutive_skips == 0
    assert _same(_weights(model), _weights(reference))


def test_one_host_sync_and_one_all_reduce_per_update(monkeypatch):
    model = _model()
    # SGD: Adam's own step reads its step counter with .item(), which is not the guard's.
    optim = _wrapper(model, optimizer=torch.optim.SGD, accumulative_counts=2)
    reduced = []
    monkeypatch.setattr(guarded_module.dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(guarded_module.dist, 'all_reduce', lambda t: reduced.append(t.clone()))
    syncs = []
    for name in ('item', 'tolist', '__bool__', '__float__', '__int__'):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            syncs.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    losses = [_loss(model, seed=s) for s in range(4)]  # forward passes are not counted
    syncs.clear()
    for loss in losses:
        optim.update_params(loss)
    monkeypatch.undo()
    assert len(reduced) == 2  # one all-reduce per update, none on the micro-batch between
    assert syncs == ['tolist', 'tolist']


@pytest.fixture
def amp_wrapper(monkeypatch):
    """A GuardedAmpOptimWrapper on the CPU with an enabled CPU GradScaler.

    MMEngine's AmpOptimWrapper refuses to be built without CUDA, and its CUDA GradScaler disables
    itself on a CPU; torch's CPU GradScaler runs the same unscale / skip / back-off logic.
    """
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)

    def build(model, **kwargs):
        optim = _wrapper(model, GuardedAmpOptimWrapper, **kwargs)
        optim.loss_scaler = torch.amp.GradScaler('cpu', init_scale=2.**10)
        return optim

    return build


def test_amp_gradient_overflow_backs_off_then_stops(amp_wrapper):
    MessageHub.get_current_instance().update_info('iter', 9)
    model = _model()
    optim = amp_wrapper(model, max_consecutive_skips=3)
    before = _weights(model)
    overflow = lambda: torch.sqrt(model.weight - model.weight.detach()).sum()  # noqa: E731
    for skips in range(1, 4):  # 'raise' mode tolerates the scaler's overflow skips
        optim.update_params(overflow())
        assert optim.consecutive_skips == skips
        assert optim.loss_scaler.get_scale() == 2.**10 / 2**skips
    assert _same(before, _weights(model))
    with pytest.raises(NonFiniteError, match='gradient at iteration 10'):
        optim.update_params(overflow())


def test_amp_nan_loss_raises_at_once(amp_wrapper):
    model = _model()
    optim = amp_wrapper(model)
    with pytest.raises(NonFiniteError, match='loss'):
        optim.update_params(_loss(model, NAN))


def test_amp_finite_updates_equal_the_scaler_step(amp_wrapper):
    # The guard unscales once and steps itself; the result must be GradScaler.step's.
    model, reference = _model(), _model()
    optim = amp_wrapper(model, accumulative_counts=2)
    ref_optim = amp_wrapper(reference, accumulative_counts=2)
    for seed in range(4):
        optim.update_params(_loss(model, seed=seed))
        loss = ref_optim.scale_loss(_loss(reference, seed=seed))
        ref_optim.backward(loss)
        if ref_optim.should_update():
            amp_optimizer_wrapper.AmpOptimWrapper.step(ref_optim)  # GradScaler.step
            ref_optim.zero_grad()
    assert _same(_weights(model), _weights(reference))
    assert optim.loss_scaler.get_scale() == ref_optim.loss_scaler.get_scale()


@pytest.mark.parametrize('accelerated', [True, False])
def test_bfloat16_has_no_loss_scale_so_a_bad_gradient_raises_at_once(accelerated, monkeypatch):
    # On a GPU (MMEngine's check made to pass) and on a CPU alike.
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: accelerated)
    MessageHub.get_current_instance().update_info('iter', 4)
    model = _model()
    optim = _wrapper(model, GuardedAmpOptimWrapper, dtype='bfloat16')
    assert optim.cast_dtype == torch.bfloat16 and not optim.loss_scaler.is_enabled()
    before = _weights(model)
    overflow = torch.sqrt(model.weight - model.weight.detach()).sum()
    with pytest.raises(NonFiniteError, match='gradient at iteration 5'):
        optim.update_params(overflow)
    assert _same(before, _weights(model))
