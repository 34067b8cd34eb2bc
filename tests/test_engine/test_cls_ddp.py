"""Classification under DDP: 2 gloo processes with 2 images each end with the weights of one
process with the same 4-image batches.

The training pipeline is made deterministic (the test pipeline: resize and centre crop), the
order fixed and stochastic depth off, so both runs see the same images at every iteration: the
two processes' batches together are the single process's batch. DDP's gradient average is then
the single process's batch mean.
"""
import pytest
import torch

from medtrans.registry import DATASETS
from medtrans.testing import write_synthetic_layout
from test_engine.train_tool import REPO, run_train_tool

TINY_CLS = REPO / 'tests' / 'data' / 'configs' / 'tiny_cls_deit_aptos2019.py'
GLOBAL_BATCH = 4
ITERS = 3

pytestmark = pytest.mark.slow

CONFIG = f"""
_base_ = ['{TINY_CLS}']
model = dict(backbone=dict(drop_path_rate=0.0))
train_dataloader = dict(
    num_workers=0, persistent_workers=False, sampler=dict(shuffle=False),
    dataset=dict(pipeline={{{{_base_.test_pipeline}}}}))
train_cfg = dict(max_iters={ITERS}, val_interval=100)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1))
# SGD: a gradient summed instead of averaged over the processes would double the update (Adam
# would hide the scale).
optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=0.05))
param_scheduler = []
"""


def _train(config, data_root, work_dir, processes, port=None):
    options = ['--data-root', str(data_root), '--cfg-options',
               f'train_dataloader.batch_size={GLOBAL_BATCH // processes}']
    run_train_tool(config, work_dir, options, processes, port)
    return [torch.load(work_dir / f'iter_{i}.pth', map_location='cpu',
                       weights_only=True)['state_dict'] for i in (1, ITERS)]


def test_two_processes_match_one_with_the_same_global_batch(free_port, tmp_path):
    data_root = tmp_path / 'aptos'
    write_synthetic_layout(DATASETS.get('APTOS2019Dataset'), str(data_root))
    config = tmp_path / 'cls_ddp.py'
    config.write_text(CONFIG)
    single = _train(config, data_root, tmp_path / 'one', processes=1)
    double = _train(config, data_root, tmp_path / 'two', processes=2, port=free_port)
    first, last = single
    moved = [k for k in last if last[k].is_floating_point() and not torch.equal(last[k], first[k])]
    assert len(moved) > 100  # the weights trained between iterations 1 and 3
    for one, two in zip(single, double):
        assert one.keys() == two.keys()
        for key, value in one.items():
            torch.testing.assert_close(two[key], value, atol=2e-6, rtol=1e-5, msg=key)
