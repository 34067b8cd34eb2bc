"""A resume from a checkpoint written at a validation's iteration keeps that validation's effects.

MMEngine writes such a checkpoint before validating and again afterwards only when the best
score improved; ``SafeResumeHook`` writes it again in the other case. Here the score never
improves after the first validation and a reduce-on-plateau scheduler halves the learning rate
at each such validation, so a resume that skipped one would train with another learning rate.
"""
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from medtrans.setup_env import register_all_modules
from medtrans.utils.plain_state import from_plain


class _Linear(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels, mode='tensor'):
        pred = self.linear(inputs).squeeze(1)
        if mode == 'loss':
            return dict(loss=((pred - labels) ** 2).mean())
        return list(pred)


class _ConstantScore(BaseMetric):
    """Scores 0.5 every time: only the first validation improves the best score."""

    def process(self, data_batch, data_samples) -> None:
        self.results.append(0.5)

    def compute_metrics(self, results: list) -> dict:
        return dict(score=results[0])


def _loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 2, generator=g)
    return dict(dataset=[dict(inputs=x[i], labels=x[i].sum()) for i in range(16)], batch_size=4,
                sampler=dict(type='InfiniteSampler', shuffle=False),
                collate_fn=dict(type='default_collate'))


def _run(work_dir, name, resume_from=None):
    register_all_modules(init_default_scope=False)
    val_loader = dict(_loader(), sampler=dict(type='DefaultSampler', shuffle=False))
    runner = Runner(
        model=_Linear(),
        work_dir=str(work_dir),
        experiment_name=name,  # a message hub of its own, even when started in the same second
        train_dataloader=_loader(),
        val_dataloader=val_loader,
        val_evaluator=[_ConstantScore()],
        val_cfg=dict(type='ValLoop'),
        optim_wrapper=dict(optimizer=dict(type='Adam', lr=0.1)),
        param_scheduler=[dict(type='ReduceOnPlateauLR', monitor='score', rule='greater',
                              factor=0.5, patience=0, by_epoch=True)],
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=6, val_interval=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2,
                                           save_best='score', rule='greater')),
        custom_hooks=[dict(type='SafeResumeHook')],
        default_scope='medtrans',
        randomness=dict(seed=0),
        resume=resume_from is not None,
        load_from=resume_from and str(resume_from),
    )
    runner.train()
    return torch.load(work_dir / 'iter_6.pth', weights_only=True)


def test_resume_after_a_validation_that_did_not_improve_matches(tmp_path):
    full = _run(tmp_path / 'full', 'full')
    # What a run killed during iteration 5 leaves: iter_4.pth, written at validation 2 of 3.
    resumed = _run(tmp_path / 'resumed', 'resumed', resume_from=tmp_path / 'full' / 'iter_4.pth')

    assert from_plain(resumed['param_schedulers']) == from_plain(full['param_schedulers'])
    assert from_plain(resumed['optimizer'])['param_groups'] == (
        from_plain(full['optimizer'])['param_groups'])
    for key, value in full['state_dict'].items():
        assert torch.equal(resumed['state_dict'][key], value), key
    scores = [from_plain(ckpt['message_hub'])['log_scalars']['val/score'].data[0].tolist()
              for ckpt in (full, resumed)]
    assert scores[0] == scores[1]
    # The final checkpoint holds the final validation too: three scores, the rate halved twice.
    assert scores[0] == [0.5, 0.5, 0.5]
    assert [g['lr'] for g in full['optimizer']['param_groups']] == [0.025]
