"""Exact resume: a run killed (SIGKILL) at any point and resumed ends where an uninterrupted run
does, bit for bit.

Each tiny config in ``RESUMABLE_CONFIGS`` (with a function that writes its data and returns the
dataset fields that read it) is run on the CPU with a fixed seed and the deterministic switch:
once uninterrupted, and once killed and resumed with ``--resume`` at each of its kill points
(:mod:`test_engine.kill_points`, loaded into the killed run only): inside a training step, during
a validation, and while the checkpoint is written again after that validation; and preempted
(SIGUSR1, on which ``PreemptionHook`` checkpoints, requeues the Slurm job and exits). The
iteration is drawn with a seed (``MEDTRANS_KILL_SEED``, default 0); the kill point is printed
and named in every failure, and ``MEDTRANS_KILL_AT=N`` repeats a given one. The final
checkpoints must agree in every entry, and no temporary file may be left.
"""
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from medtrans.engine import latest_checkpoint
from medtrans.engine.hooks import EXIT_PREEMPTED
from medtrans.fileio import checkpoint_meta
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


#: (tiny config, its data writer, its kill points); DINO validates nothing. Each kill point is
#: taken by one config at least (CI time).
RESUMABLE_CONFIGS = [
    (CONFIGS / 'tiny_deeplab3_deit_isic2018.py', _isic2018, ('train', 'rewrite')),
    (CONFIGS / 'tiny_dino_deit_isic2018.py', _isic2018, ('train',)),
    (CONFIGS / 'tiny_cls_deit_aptos2019.py', _aptos2019, ('val', 'rewrite', 'preempt')),
]
CASES = [(config, writer, point) for config, writer, points in RESUMABLE_CONFIGS
         for point in points]
MAX_ITERS = 8
# Validation every 2 iterations (the one at 8 ends the run); kills land in those after the
# first, which always finds a new best: MMEngine's rewrite then, SafeResumeHook's otherwise.
VALIDATIONS = (4, 6)

pytestmark = pytest.mark.slow


def _command(config, data, work_dir, resume=False):
    cfg = Config.fromfile(str(config))
    options = [f'{loader}.dataset.{key}={value}'
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
               if cfg.get(loader) is not None for key, value in data.items()]
    options += [f'train_cfg.max_iters={MAX_ITERS}', 'train_cfg.val_interval=2',
                'default_hooks.checkpoint.interval=2', 'default_hooks.checkpoint.max_keep_ckpts=1',
                'default_hooks.logger.interval=1', 'randomness.seed=7',
                'randomness.deterministic=True']
    return ([sys.executable, 'tools/train.py', str(config), '--work-dir', str(work_dir)] +
            (['--resume'] if resume else []) + ['--cfg-options', *options])


def _env(**extra):
    return dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=f'{REPO}{os.pathsep}{REPO / "tests"}',
                OMP_NUM_THREADS='1', **extra)


def _train(config, data, work_dir, resume=False):
    result = subprocess.run(_command(config, data, work_dir, resume), cwd=REPO, env=_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    return result.stdout + result.stderr


def _train_and_kill(config, data, work_dir, point, iteration):
    """Run ``config`` with the kill-point hook, which SIGKILLs it at ``point:iteration`` (or, for
    ``preempt``, signals it as Slurm would, under a fake Slurm job whose ``scontrol`` records
    its arguments). Returns what ``scontrol`` was asked."""
    killing = work_dir.parent / f'{work_dir.name}_config.py'
    killing.write_text(
        f"_base_ = ['{config}']\n"
        "custom_imports = dict(imports=['test_engine.kill_points'], allow_failed_imports=False)\n"
        "custom_hooks = _base_.custom_hooks + [dict(type='KillPointHook')]\n")
    bin_dir, asked = work_dir.parent / 'bin', work_dir.parent / 'scontrol.txt'
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / 'scontrol').write_text(f'#!/bin/sh\necho "$@" >> {asked}\n')
    (bin_dir / 'scontrol').chmod(0o755)
    env = _env(MEDTRANS_KILL_POINT=f'{point}:{iteration}', SLURM_JOB_ID='4242',
               PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    result = subprocess.run(_command(killing, data, work_dir), cwd=REPO, timeout=600, env=env,
                            capture_output=True, text=True)
    expected = EXIT_PREEMPTED if point == 'preempt' else -signal.SIGKILL
    assert result.returncode == expected, result.stderr[-5000:]
    return asked.read_text() if asked.exists() else ''


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


def _kill_at(point):
    """The iteration to kill at: ``MEDTRANS_KILL_AT``, or drawn with ``MEDTRANS_KILL_SEED``."""
    if os.environ.get('MEDTRANS_KILL_AT'):
        return int(os.environ['MEDTRANS_KILL_AT']), 'from MEDTRANS_KILL_AT'
    seed = int(os.environ.get('MEDTRANS_KILL_SEED', 0))
    rng = random.Random(f'{seed}{point}')
    if point in ('train', 'preempt'):
        return rng.randint(3, MAX_ITERS - 2), f'drawn with MEDTRANS_KILL_SEED={seed}'
    iteration = rng.choice(VALIDATIONS)
    return iteration, f'drawn with MEDTRANS_KILL_SEED={seed}'


_REFERENCES = {}  # config -> final state of its uninterrupted run (per test process)


@pytest.mark.parametrize('config, write_data, point', CASES,
                         ids=[f'{config.stem}-{point}' for config, _, point in CASES])
def test_killed_and_resumed_run_matches_uninterrupted(config, write_data, point, tmp_path,
                                                      tmp_path_factory):
    data = write_data(tmp_path / 'data')
    if config not in _REFERENCES:
        reference_dir = tmp_path_factory.mktemp('uninterrupted')
        _train(config, write_data(reference_dir / 'data'), reference_dir / 'run')
        _REFERENCES[config] = _final_state(reference_dir / 'run')

    iteration, origin = _kill_at(point)
    context = (f'killed at {point}:{iteration} ({origin}; MEDTRANS_KILL_AT={iteration} repeats '
               'it)')
    print(context)
    killed = tmp_path / 'killed'
    asked = _train_and_kill(config, data, killed, point, iteration)
    assert not (killed / f'iter_{MAX_ITERS}.pth').exists()
    if point == 'preempt':  # checkpointed where it stopped, and requeued itself
        assert latest_checkpoint(str(killed)).endswith(f'iter_{iteration}.pth'), context
        assert asked == 'requeue 4242\n', context
    temporary = list(killed.rglob('.*.tmp'))
    if point == 'rewrite':  # the kill landed in the rewrite, which left its temporary file
        assert [p.name.split('.pth.')[0] for p in temporary] == [f'.iter_{iteration}'], context
    if point in ('val', 'rewrite'):  # resumed from the checkpoint written before the validation
        assert checkpoint_meta(latest_checkpoint(str(killed)))['validation_pending'], context

    log = _train(config, data, killed, resume=True)
    assert 'Resumed at iteration' in log, context  # mid-run, without replaying the data
    pending = point in ('val', 'rewrite') or (point == 'preempt' and iteration in VALIDATIONS)
    assert ('validating first' in log) == pending, context
    assert not list(killed.rglob('.*.tmp')), context
    _assert_same(_REFERENCES[config], _final_state(killed), context)
