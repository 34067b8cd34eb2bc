"""An injected NaN loss inside a real Runner run: stop (default) or skip, never corrupt weights."""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from medtrans.engine.optimizers import NonFiniteError
from medtrans.setup_env import register_all_modules


class _NanAtStep(BaseModel):
    """A linear model whose loss is NaN at one training step (1-based)."""

    def __init__(self, nan_step: int) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.nan_step = nan_step
        self.steps = 0

    def forward(self, inputs, labels, mode='tensor'):
        pred = self.linear(inputs)
        if mode == 'loss':
            self.steps += 1
            loss = ((pred.squeeze(1) - labels) ** 2).mean()
            return dict(loss=loss * float('nan') if self.steps == self.nan_step else loss)
        return pred


def _dataset():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 2, generator=g)
    return [dict(inputs=x[i], labels=x[i].sum()) for i in range(16)]


def _runner(work_dir, on_non_finite, nan_step=4, max_iters=6):
    register_all_modules(init_default_scope=False)
    return Runner(
        model=_NanAtStep(nan_step),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=_dataset(), batch_size=4,
                              sampler=dict(type='InfiniteSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(type='GuardedOptimWrapper', on_non_finite=on_non_finite,
                           optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False,
                                           max_keep_ckpts=10)),
        custom_hooks=[dict(type='SafeResumeHook')],
        default_scope='medtrans',
        randomness=dict(seed=0),
    )


def test_nan_loss_stops_run_and_last_checkpoint_is_good(tmp_path):
    runner = _runner(tmp_path, 'raise')
    with pytest.raises(NonFiniteError, match='iteration 4'):
        runner.train()
    assert not (tmp_path / 'iter_4.pth').exists()
    last = torch.load(tmp_path / 'iter_3.pth', weights_only=True)['state_dict']
    assert all(torch.isfinite(v).all() for v in last.values())
    # The weights in memory are still those of the last good checkpoint.
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, last[key]), key


def test_skip_mode_finishes_and_drops_only_the_bad_step(tmp_path):
    runner = _runner(tmp_path, 'skip')
    runner.train()
    after_3 = torch.load(tmp_path / 'iter_3.pth', weights_only=True)['state_dict']
    after_4 = torch.load(tmp_path / 'iter_4.pth', weights_only=True)['state_dict']
    for key in after_3:
        assert torch.equal(after_3[key], after_4[key]), key  # step 4 was skipped
    final = torch.load(tmp_path / 'iter_6.pth', weights_only=True)['state_dict']
    assert all(torch.isfinite(v).all() for v in final.values())
    assert not torch.equal(final['linear.weight'], after_4['linear.weight'])
