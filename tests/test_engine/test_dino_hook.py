"""DINO's schedules and gradient rules, as DINOHook applies them in a real Runner run.

The schedule functions are compared with DINO's own numpy formulas (facebookresearch/dino:
``cosine_scheduler`` and the teacher-temperature ``np.linspace``), and a tiny DINO run records,
at every iteration, the teacher before and after its update, the student, the weight decay,
the teacher temperature and every optimizer step (12 s or so: marked slow).
"""
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from torch.optim.optimizer import register_optimizer_step_pre_hook

from medtrans.apis import build_runner, load_config, prepare_config
from medtrans.engine.hooks.dino_hook import (
    DINOHook,
    clip_grads_per_param_,
    teacher_momentum_at,
    teacher_temp_at,
)
from medtrans.models.selfsup import DINO
from medtrans.setup_env import register_all_modules
from medtrans.testing import make_synthetic_isic2018

REPO = Path(__file__).resolve().parents[2]
TINY_DINO = REPO / 'tests' / 'data' / 'configs' / 'tiny_dino_deit_isic2018.py'
EPOCH = 4  # 18 training images, batch 4, last partial batch dropped
EPOCHS = 2
CLIP = 1e-2  # small enough that the tiny model's gradients are clipped


def dino_cosine_scheduler(base_value, final_value, epochs, niter_per_ep):
    """facebookresearch/dino utils.cosine_scheduler without warm-up."""
    iters = np.arange(epochs * niter_per_ep)
    return final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))


@pytest.mark.parametrize('warmup_epochs', [0, 1, 4])
def test_teacher_temperature_follows_dino(warmup_epochs):
    epochs, per_epoch = 10, 3
    schedule = np.concatenate((np.linspace(0.04, 0.07, warmup_epochs),
                               np.ones(epochs - warmup_epochs) * 0.07))
    for iteration in range(epochs * per_epoch):
        assert teacher_temp_at(iteration, per_epoch, 0.04, 0.07, warmup_epochs) == \
            pytest.approx(schedule[iteration // per_epoch], rel=1e-12)


def test_teacher_momentum_follows_dino():
    schedule = dino_cosine_scheduler(0.99, 1, epochs=7, niter_per_ep=5)
    for iteration, expected in enumerate(schedule):
        assert teacher_momentum_at(iteration, 35, 0.99) == pytest.approx(expected, rel=1e-12)


def test_per_parameter_clipping_follows_dino():
    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(4, 5, generator=generator) * s for s in (0.1, 1., 10., 100.)]
    expected = [g.clone() for g in grads]
    for g in expected:  # DINO's utils.clip_gradients
        clip_coef = 3.0 / (g.norm(2) + 1e-6)
        if clip_coef < 1:
            g.mul_(clip_coef)
    clip_grads_per_param_(grads, 3.0)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)
    assert torch.equal(grads[0], expected[0])  # below the limit: untouched


def _grad_norms(optimizer):
    return {id(p): p.grad.norm().item() for group in optimizer.param_groups
            for p in group['params'] if p.grad is not None}


def test_hook_refuses_other_models_and_gradient_accumulation():
    hook = DINOHook()
    with pytest.raises(TypeError, match='drives a DINO model'):
        hook.before_train(SimpleNamespace(model=torch.nn.Linear(2, 2), optim_wrapper=None))
    register_all_modules()
    model = DINO(backbone=dict(type='DeiT', arch='deit-tiny', img_size=32),
                 head=dict(type='DINOHead', out_channels=8, hidden_channels=8,
                           bottleneck_channels=8))
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    with pytest.raises(ValueError, match='accumulation'):
        hook.before_train(SimpleNamespace(model=model, optim_wrapper=wrapper))


@pytest.mark.parametrize('kwargs', [
    dict(teacher_temp=0), dict(warmup_teacher_temp_epochs=-1), dict(momentum=1.5),
    dict(clip_grad=0)])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        DINOHook(**kwargs)


class Recorder(Hook):
    """Records the state DINOHook leaves before and after each iteration, and every step."""

    priority = 'BELOW_NORMAL'  # after DINOHook (NORMAL) in both before_ and after_train_iter

    def __init__(self):
        self.iterations = []
        self.steps = 0
        self.raw_grads = []
        self.step_grads = []
        self._global_hook = None

    def before_train(self, runner):
        optimizer = runner.optim_wrapper.optimizer
        optimizer.register_step_post_hook(lambda *args: self._count())
        # Global pre-hooks run before the optimizer's own: the gradients as backward left them.
        self._global_hook = register_optimizer_step_pre_hook(
            lambda opt, args, kwargs: self.raw_grads.append(_grad_norms(opt)))
        # Registered after DINOHook's pre-hook: the gradients it leaves to the step.
        optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: self.step_grads.append(_grad_norms(opt)))

    def after_train(self, runner):
        self._global_hook.remove()

    def _count(self):
        self.steps += 1

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model
        self.iterations.append(dict(
            iter=runner.iter,
            teacher_temp=model.teacher_temp,
            teacher_before={k: v.clone() for k, v in model.teacher.state_dict().items()},
            weight_decay=[g['weight_decay'] for g in runner.optim_wrapper.param_groups],
            ndims=[g['params'][0].ndim for g in runner.optim_wrapper.param_groups],
            lr=runner.optim_wrapper.param_groups[0]['lr']))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = runner.model
        self.iterations[-1].update(
            teacher_after={k: v.clone() for k, v in model.teacher.state_dict().items()},
            student={**{f'backbone.{k}': v.clone() for k, v in model.backbone.state_dict().items()},
                     **{f'head.{k}': v.clone() for k, v in model.head.state_dict().items()}})


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp('dino') / 'ISIC2018'
    make_synthetic_isic2018(root, num_train=20, num_val=0, size=(48, 48), seed=1)
    cfg = load_config(str(TINY_DINO), {
        'train_dataloader.dataset.data_root': str(root),
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_cfg': dict(_delete_=True, type='IterBasedEpochsTrainLoop', max_epochs=EPOCHS),
        'custom_hooks.2.clip_grad': CLIP,
    })
    prepare_config(cfg, str(TINY_DINO), work_dir=str(tmp_path_factory.mktemp('work')))
    runner = build_runner(cfg)
    recorder = Recorder()
    runner.register_hook(recorder)
    runner.train()
    return runner, recorder


@pytest.mark.slow
def test_loop_runs_the_epochs_in_iterations(run):
    runner, recorder = run
    assert runner.max_iters == EPOCHS * EPOCH == runner.iter
    assert [r['iter'] for r in recorder.iterations] == list(range(EPOCHS * EPOCH))


@pytest.mark.slow
def test_one_optimizer_step_per_iteration(run):
    runner, recorder = run
    assert recorder.steps == runner.iter
    state = runner.optim_wrapper.optimizer.state
    backbone_steps = {int(state[p]['step']) for p in runner.model.backbone.parameters()}
    assert backbone_steps == {runner.iter}


@pytest.mark.slow
def test_last_layer_is_frozen_during_the_first_epoch(run):
    runner, recorder = run
    state = runner.optim_wrapper.optimizer.state
    last_layer = runner.model.head.last_layer.parametrizations.weight.original1
    assert int(state[last_layer]['step']) == runner.iter - EPOCH
    key = 'head.last_layer.parametrizations.weight.original1'
    first_epoch = [r['student'][key] for r in recorder.iterations[:EPOCH]]
    assert all(torch.equal(w, first_epoch[0]) for w in first_epoch)
    assert not torch.equal(recorder.iterations[EPOCH]['student'][key], first_epoch[0])
    # Before the first update the student's last layer is still the teacher's.
    assert torch.equal(first_epoch[0], recorder.iterations[0]['teacher_before'][key])
    assert all(id(last_layer) not in grads for grads in recorder.step_grads[:EPOCH])
    assert all(id(last_layer) in grads for grads in recorder.step_grads[EPOCH:])


@pytest.mark.slow
def test_gradients_are_clipped_per_parameter(run):
    _, recorder = run
    assert len(recorder.raw_grads) == len(recorder.step_grads) == EPOCHS * EPOCH
    clipped = 0
    for raw, step in zip(recorder.raw_grads, recorder.step_grads):
        for param, norm in step.items():
            expected = raw[param] * min(1., CLIP / (raw[param] + 1e-6))
            assert norm == pytest.approx(expected, rel=1e-5)
            clipped += raw[param] > CLIP
    assert clipped


@pytest.mark.slow
def test_teacher_is_the_ema_of_the_student_with_the_scheduled_momentum(run):
    runner, recorder = run
    momenta = dino_cosine_scheduler(0.99, 1, epochs=EPOCHS, niter_per_ep=EPOCH)
    for record, momentum in zip(recorder.iterations, momenta):
        for key, after in record['teacher_after'].items():
            expected = momentum * record['teacher_before'][key] + \
                (1 - momentum) * record['student'][key]
            torch.testing.assert_close(after, expected, msg=f'iter {record["iter"]} {key}')


@pytest.mark.slow
def test_teacher_temperature_and_weight_decay_follow_their_schedules(run):
    _, recorder = run
    temps = np.concatenate((np.linspace(0.04, 0.07, 2), np.ones(EPOCHS - 2) * 0.07))
    total = 3 * EPOCH  # the tiny config's weight-decay cosine spans 3 epochs
    for record in recorder.iterations:
        it = record['iter']
        assert record['teacher_temp'] == pytest.approx(temps[it // EPOCH], rel=1e-12)
        expected = 1e-4 + 0.5 * (1e-5 - 1e-4) * (1 + math.cos(math.pi * it / total))
        assert {1, 2} <= set(record['ndims'])
        for ndim, decay in zip(record['ndims'], record['weight_decay']):
            # DINO decays no bias or normalisation weight (1-D parameters).
            assert decay == (0. if ndim == 1 else pytest.approx(expected, rel=1e-9)), (it, ndim)
