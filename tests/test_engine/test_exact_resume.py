"""A run killed with SIGKILL and resumed ends exactly like an uninterrupted run.

Written once for every resumable tiny config: a new algorithm joins by adding its tiny config to
``RESUMABLE_CONFIGS``, with a function that writes its data and returns the dataset fields that
read it. Each config is run twice on the CPU with a fixed seed and the deterministic switch:
once uninterrupted, and once killed at an iteration drawn with a seed (``MEDTRANS_KILL_SEED``,
default 0) and resumed with ``--resume``; the two must agree bit for bit (a run that is not
deterministic fails this too). The kill point is printed and named in every failure;
``MEDTRANS_KILL_AT=N`` repeats a given one.
"""
import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from medtrans.testing import make_synthetic_isic2018
from medtrans.testing.layouts.aptos import aptos2019_layout
from medtrans.utils.plain_state import from_plain

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'tests' / 'data' / 'configs'


def _isic2018(root: Path) -> dict:
    make_synthetic_isic2018(root, num_train=20, num_val=0, size=(64, 64), seed=3)
    return dict(data_root=str(root))


def _aptos2019(root: Path) -> dict:
    # The six images of the fuzz layout, every grade present; all of them train and validate.
    return dict(aptos2019_layout(str(root)).dataset_cfg)


#: (tiny config, its data writer)
RESUMABLE_CONFIGS = [
    (CONFIGS / 'tiny_deeplab3_deit_isic2018.py', _isic2018),
    (CONFIGS / 'tiny_dino_deit_isic2018.py', _isic2018),
    (CONFIGS / 'tiny_cls_deit_aptos2019.py', _aptos2019),
]
MAX_ITERS = 12

pytestmark = pytest.mark.slow


def _command(config, data, work_dir, resume=False):
    cfg = Config.fromfile(str(config))
    options = [f'{loader}.dataset.{key}={value}'
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
               if cfg.get(loader) is not None for key, value in data.items()]
    options += [f'train_cfg.max_iters={MAX_ITERS}', 'train_cfg.val_interval=4',
                'default_hooks.checkpoint.interval=2', 'default_hooks.checkpoint.max_keep_ckpts=3',
                'default_hooks.logger.interval=1', 'randomness.seed=7',
                'randomness.deterministic=True']
    return ([sys.executable, 'tools/train.py', str(config), '--work-dir', str(work_dir)] +
            (['--resume'] if resume else []) + ['--cfg-options', *options])


def _env():
    return dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')


def _train(config, data, work_dir, resume=False):
    result = subprocess.run(_command(config, data, work_dir, resume), cwd=REPO, env=_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    return result.stdout + result.stderr


def _train_and_kill(config, data, work_dir, kill_at):
    """Start a run and SIGKILL it as soon as it logs iteration ``kill_at``."""
    proc = subprocess.Popen(_command(config, data, work_dir), cwd=REPO, env=_env(),
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


# Values that name a run, time it or name the code's commit (mmengine_version ends with the git
# hash) rather than describe its state. Everything else in the final checkpoint must be equal.
_RUN_SPECIFIC_META = ('cfg', 'time', 'experiment_name', 'mmengine_version')
_RUN_SPECIFIC_INFO = ('cfg', 'experiment_name', 'mmengine_version', 'eta')
_PATH_INFO = ('last_ckpt', 'best_ckpt')  # in another work dir: compare the file names


def _final_state(work_dir):
    """The final checkpoint, decoded as a resume would, and the validation results, minus what
    names or times the run."""
    ckpt = torch.load(work_dir / f'iter_{MAX_ITERS}.pth', weights_only=True)
    state = {key: value if key == 'state_dict' else from_plain(value)
             for key, value in ckpt.items()}
    for key in _RUN_SPECIFIC_META:
        state['meta'].pop(key)
    hub = state['message_hub']
    for key in _RUN_SPECIFIC_INFO:
        hub['runtime_info'].pop(key)
    for key in _PATH_INFO:
        if key in hub['runtime_info']:  # no best checkpoint in a run without validation
            hub['runtime_info'][key] = Path(hub['runtime_info'][key]).name
    hub['log_scalars'] = {key: buffer.data for key, buffer in hub['log_scalars'].items()
                          if not key.endswith('time')}
    state['val'] = {}
    for path in (work_dir / 'metrics').glob('val_*.json'):
        record = json.loads(path.read_text())
        record.pop('timestamp')
        state['val'][path.name] = record
    state['best_checkpoints'] = sorted(p.name for p in work_dir.glob('best_*.pth'))
    return state


def _differences(a, b, path='checkpoint'):
    """Paths at which ``a`` and ``b`` differ in type, structure or exact value."""
    if type(a) is not type(b):
        return [f'{path}: {type(a).__name__} vs {type(b).__name__}']
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return [f'{path}: keys {sorted(map(str, a.keys() ^ b.keys()))} in only one']
        return [d for key in a for d in _differences(a[key], b[key], f'{path}.{key}')]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f'{path}: length {len(a)} vs {len(b)}']
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f'{path}[{i}]')]
    if isinstance(a, torch.Tensor):
        same = a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        same = a.dtype == b.dtype and np.array_equal(a, b)
    else:
        same = a == b or (a != a and b != b)  # NaN equals NaN here
    return [] if same else [f'{path}: {a!r:.80} vs {b!r:.80}']


def _assert_same(a, b, context):
    # Every key is compared: model weights, the whole optimizer state (Adam's step, exp_avg and
    # exp_avg_sq per parameter, every param-group key), schedulers (warm-up, reduce-on-plateau
    # counters), message hub (logged losses, best score, checkpoint bookkeeping), RNG states,
    # meta, and every validation's metrics.
    assert a.keys() == b.keys()
    assert a['optimizer']['state'], 'no optimizer state to compare'
    diffs = _differences(a, b)
    assert not diffs, f'{context}: {len(diffs)} differences, first: ' + '; '.join(diffs[:5])


def _kill_point():
    """The iteration to kill at: ``MEDTRANS_KILL_AT``, or drawn with ``MEDTRANS_KILL_SEED``."""
    if os.environ.get('MEDTRANS_KILL_AT'):
        return int(os.environ['MEDTRANS_KILL_AT']), 'from MEDTRANS_KILL_AT'
    seed = int(os.environ.get('MEDTRANS_KILL_SEED', 0))
    return random.Random(seed).randint(3, MAX_ITERS - 2), f'drawn with MEDTRANS_KILL_SEED={seed}'


@pytest.mark.parametrize('config, write_data', RESUMABLE_CONFIGS,
                         ids=[config.stem for config, _ in RESUMABLE_CONFIGS])
def test_killed_and_resumed_run_matches_uninterrupted(config, write_data, tmp_path):
    data = write_data(tmp_path / 'data')
    _train(config, data, tmp_path / 'uninterrupted')
    reference = _final_state(tmp_path / 'uninterrupted')

    kill_at, origin = _kill_point()
    context = f'killed at iteration {kill_at} ({origin}; MEDTRANS_KILL_AT={kill_at} repeats it)'
    print(context)
    killed = tmp_path / 'killed'
    _train_and_kill(config, data, killed, kill_at)
    assert not (killed / f'iter_{MAX_ITERS}.pth').exists()
    log = _train(config, data, killed, resume=True)
    assert 'Advance dataloader' in log, context  # it resumed mid-run, not from scratch
    _assert_same(reference, _final_state(killed), context)
