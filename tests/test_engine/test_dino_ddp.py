"""DINO under DDP: 2 gloo processes with 2 images each end with the teacher and centre of one
process with the same 4-image batches, and both processes hold the same teacher and centre.

The views are deterministic (resizes and flips), the order fixed and stochastic depth off, so
the two runs see the same batches: the union of the two processes' batches is the single
process's batch at every iteration. What DDP changes is then only where the sums are taken:
gradients are averaged across processes by DDP, the centre's batch mean by DINOLoss's
all-reduce.
"""
import pytest
import torch

from medtrans.testing import make_synthetic_isic2018
from test_engine.train_tool import REPO, run_train_tool

TINY_DINO = REPO / 'tests' / 'data' / 'configs' / 'tiny_dino_deit_isic2018.py'
GLOBAL_BATCH = 4

pytestmark = pytest.mark.slow

CONFIG = f"""
_base_ = ['{TINY_DINO}']
custom_imports = dict(imports=['test_engine.dino_dump_hook'], allow_failed_imports=False)
model = dict(backbone=dict(drop_path_rate=0.0))
views = dict(
    type='mmpretrain.MultiView',
    num_views=[1, 1, 1, 1],
    transforms=[
        [dict(type='Resize', scale=(32, 32), keep_ratio=False)],
        [dict(type='Resize', scale=(32, 32), keep_ratio=False), dict(type='RandomFlip', prob=1.)],
        [dict(type='Resize', scale=(16, 16), keep_ratio=False)],
        [dict(type='Resize', scale=(16, 16), keep_ratio=False),
         dict(type='RandomFlip', prob=1., direction='vertical')],
    ])
train_dataloader = dict(
    num_workers=0, persistent_workers=False, sampler=dict(shuffle=False),
    dataset=dict(pipeline=[dict(type='LoadImageStrict'), views,
                           dict(type='mmpretrain.PackInputs')]))
train_cfg = dict(max_iters=6)
custom_hooks = [
    dict(type='SafeResumeHook'),
    dict(type='DINOHook', warmup_teacher_temp=0.04, teacher_temp=0.07,
         warmup_teacher_temp_epochs=2, momentum=0.99, freeze_last_layer_epochs=1, clip_grad=3.0),
    dict(type='DumpDINOStateHook'),
]
"""


def _train(config, data_root, work_dir, processes, port=None):
    options = ['--cfg-options', f'train_dataloader.dataset.data_root={data_root}',
               f'train_dataloader.batch_size={GLOBAL_BATCH // processes}']
    run_train_tool(config, work_dir, options, processes, port)
    return [torch.load(work_dir / f'rank{rank}.pth', weights_only=True)
            for rank in range(processes)]


def test_two_processes_match_one_with_the_same_global_batch(free_port, tmp_path):
    data_root = tmp_path / 'ISIC2018'
    make_synthetic_isic2018(data_root, num_train=20, num_val=0, size=(48, 48), seed=5)
    config = tmp_path / 'dino_ddp.py'
    config.write_text(CONFIG)
    (single, ) = _train(config, data_root, tmp_path / 'one', processes=1)
    rank0, rank1 = _train(config, data_root, tmp_path / 'two', processes=2, port=free_port)

    # Every process holds the same teacher and centre, bit for bit.
    assert torch.equal(rank0['center'], rank1['center'])
    assert rank0['teacher'].keys() == rank1['teacher'].keys()
    for key, value in rank0['teacher'].items():
        assert torch.equal(value, rank1['teacher'][key]), key

    # And they are those of the single process, up to the order of float sums. The attention
    # keys' bias has a gradient that is zero up to rounding (softmax ignores a shift shared by
    # all keys), which Adam scales up to steps of about the learning rate: there the two runs'
    # rounding differs by up to 1.06e-6 (fused AdamW, measured), hence atol 2e-6 there.
    assert single['center'].abs().sum() > 0
    torch.testing.assert_close(rank0['center'], single['center'], rtol=1e-4, atol=1e-6)
    moved = 0
    for key, value in single['teacher'].items():
        atol = 2e-6 if key.endswith('attn.qkv.bias') else 1e-6
        torch.testing.assert_close(rank0['teacher'][key], value, rtol=1e-4, atol=atol, msg=key)
        moved += not torch.equal(value, rank0['teacher'][key])
    assert moved  # the runs really differ in where sums are taken
