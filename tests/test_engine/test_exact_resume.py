"""A run killed with SIGKILL and resumed ends exactly like an uninterrupted run.

Written once for every resumable tiny config: a new algorithm joins by adding its tiny config to
``RESUMABLE_CONFIGS``. Each config is run three times on the CPU with a fixed seed and the
deterministic switch: twice uninterrupted (the two must agree: determinism), and once killed at
a random iteration and resumed with ``--resume`` (must agree with them: exact resume). The kill
point is printed; ``MEDTRANS_KILL_AT=N`` repeats a given one.
"""
import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medtrans.datasets.synthetic import make_synthetic_isic2018
from medtrans.utils.plain_state import from_plain

REPO = Path(__file__).resolve().parents[2]
RESUMABLE_CONFIGS = [
    REPO / 'tests' / 'data' / 'configs' / 'tiny_deeplab3_deit_isic2018.py',
]
MAX_ITERS = 12

pytestmark = pytest.mark.slow


def _command(config, data_root, work_dir, resume=False):
    options = [f'{loader}.dataset.data_root={data_root}'
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    options += [f'train_cfg.max_iters={MAX_ITERS}', 'train_cfg.val_interval=4',
                'default_hooks.checkpoint.interval=2', 'default_hooks.checkpoint.max_keep_ckpts=3',
                'default_hooks.logger.interval=1', 'randomness.seed=7',
                'randomness.deterministic=True']
    return ([sys.executable, 'tools/train.py', str(config), '--work-dir', str(work_dir)] +
            (['--resume'] if resume else []) + ['--cfg-options', *options])


def _env():
    return dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')


def _train(config, data_root, work_dir, resume=False):
    result = subprocess.run(_command(config, data_root, work_dir, resume), cwd=REPO, env=_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    return result.stdout + result.stderr


def _train_and_kill(config, data_root, work_dir, kill_at):
    """Start a run and SIGKILL it as soon as it logs iteration ``kill_at``."""
    proc = subprocess.Popen(_command(config, data_root, work_dir), cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pattern = re.compile(rf'Iter\(train\) \[\s*{kill_at}/{MAX_ITERS}\]')
    try:
        for line in proc.stdout:
            if pattern.search(line):
                proc.send_signal(signal.SIGKILL)
                break
        else:
            pytest.fail(f'run ended before iteration {kill_at}')
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _final_state(work_dir):
    ckpt = torch.load(work_dir / f'iter_{MAX_ITERS}.pth', weights_only=True)
    metrics = json.loads((work_dir / 'metrics' / f'val_{MAX_ITERS}.json').read_text())
    best = from_plain(ckpt['message_hub'])['runtime_info'].get('best_score')
    return dict(weights=ckpt['state_dict'], optimizer=ckpt['optimizer'],
                schedulers=ckpt['param_schedulers'], best=best, metrics=metrics['metrics'])


def _assert_same(a, b):
    assert a['weights'].keys() == b['weights'].keys()
    for key in a['weights']:
        assert torch.equal(a['weights'][key], b['weights'][key]), key
    for group_a, group_b in zip(a['optimizer']['param_groups'], b['optimizer']['param_groups']):
        assert group_a['lr'] == group_b['lr']
    # LR schedules (warm-up, reduce-on-plateau counters) and best-metric tracking.
    assert a['schedulers'] == b['schedulers']
    assert a['best'] == b['best']
    assert a['metrics'] == b['metrics']


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('resume') / 'ISIC2018'
    make_synthetic_isic2018(root, num_train=20, num_val=0, size=(64, 64), seed=3)
    return root


@pytest.mark.parametrize('config', RESUMABLE_CONFIGS, ids=lambda p: p.stem)
def test_killed_and_resumed_run_matches_uninterrupted(config, data_root, tmp_path):
    _train(config, data_root, tmp_path / 'a')
    _train(config, data_root, tmp_path / 'b')
    reference = _final_state(tmp_path / 'a')
    _assert_same(reference, _final_state(tmp_path / 'b'))  # same seed, same result

    kill_at = (int(os.environ.get('MEDTRANS_KILL_AT', 0))
               or random.Random().randint(3, MAX_ITERS - 2))
    print(f'killing at iteration {kill_at} (set MEDTRANS_KILL_AT to repeat)')
    killed = tmp_path / 'killed'
    _train_and_kill(config, data_root, killed, kill_at)
    assert not (killed / f'iter_{MAX_ITERS}.pth').exists()
    log = _train(config, data_root, killed, resume=True)
    assert 'Advance dataloader' in log  # it resumed mid-run, not from scratch
    _assert_same(reference, _final_state(killed))
