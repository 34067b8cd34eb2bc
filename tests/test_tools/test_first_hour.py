"""A new user's first hour, through the real tools, asserting what they print.

Errors before a run come first and short (one message naming the field or file and the fix,
no traceback, nothing built); a short run of any config (``--iters``, ``--batch-size``, DINO's
loop in epochs included), logged to TensorBoard and MLflow files (``--vis-backend``), and a
short test with its summary; a file that cannot be read mid-run names the dataset check.
"""
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from medtrans.registry import DATASETS
from medtrans.testing import write_synthetic_layout

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'tests' / 'data' / 'configs'
TINY_CLS = CONFIGS / 'tiny_cls_deit_aptos2019.py'
RESNET_APTOS = 'configs/classification/resnet50/resnet50_in1k_1xb64_plateau_aptos2019-224.py'
DEBUG_HINT = '(--debug shows the traceback)'


def _tool(*args):
    """Run a tool from the repository root; its exit status and what it printed."""
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    env.pop('MLFLOW_TRACKING_URI', None)
    result = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope='module')
def aptos(tmp_path_factory):
    root = tmp_path_factory.mktemp('data') / 'aptos'
    write_synthetic_layout(DATASETS.get('APTOS2019Dataset'), str(root))
    return root


def test_missing_imagenet_weights_is_one_short_message(aptos, tmp_path):
    status, out = _tool('tools/train.py', RESNET_APTOS, '--data-root', aptos,
                        '--work-dir', tmp_path / 'work')
    lines = out.splitlines()
    assert status == 1 and len(lines) < 40, out
    assert 'Traceback' not in out and 'Config:' not in out
    assert lines[-2:] == [
        'train.py: error: model.backbone.pretrained: no such weight file '
        '"checkpoints/resnet50.tv_in1k.safetensors" (nothing is downloaded at run time). These '
        "are timm's ImageNet weights: save them once on a machine with internet access with "
        '`python tools/misc/download_timm_weights.py checkpoints --models resnet50.tv_in1k` '
        "(all of the study's: without --models) and copy the folder here. Or pass --pretrained "
        'FILE for your copy, or --pretrained none for random weights.',
        f'train.py: {DEBUG_HINT}']
    assert not (tmp_path / 'work').exists()  # nothing was built


@pytest.mark.slow
def test_every_problem_before_the_run_in_one_message_and_debug_shows_where(tmp_path):
    args = ('tools/train.py', RESNET_APTOS, '--data-root', tmp_path / 'nowhere', '--pretrained',
            'none', '--work-dir', tmp_path / 'work', '--cfg-options',
            'model.backbone.type=TimmResnet')
    status, out = _tool(*args)
    assert status == 1
    start = out.splitlines().index('train.py: error: 2 problems:')
    assert out.splitlines()[start + 1:] == [
        "- model.backbone.type: type 'TimmResnet' is not registered in any registry of scope "
        "'medtrans'. Did you mean 'TimmResNet', 'mmseg.ResNet', 'mmpretrain.ResNet'? Inside a "
        "section built in scope 'medtrans' (`_scope_`), a type of another package takes its "
        "scope prefix, e.g. 'medtrans.DeiT'; `python -m medtrans list` shows what medtrans and "
        'its plugins register.',
        f'- train_dataloader.dataset.data_root and val_dataloader.dataset.data_root: no such '
        f'folder "{tmp_path / "nowhere"}" (where APTOS2019Dataset expects its official layout, '
        'docs/datasets.md). Point the config at your copy with --data-root DIR; `python '
        f'tools/check_dataset.py {RESNET_APTOS} --data-root DIR` then checks every file of it.',
        f'train.py: {DEBUG_HINT}']
    status, out = _tool(*args, '--debug')
    assert status == 1 and 'Traceback (most recent call last)' in out
    assert 'medtrans.apis.preflight.PreflightError: 2 problems:' in out.splitlines()
    assert 'train.py: error' not in out


def test_a_missing_checkpoint_lists_those_of_the_work_dir(aptos, tmp_path):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    for name in ('iter_6.pth', 'best_kappa_iter_3.pth'):
        (work_dir / name).write_bytes(b'')
    status, out = _tool('tools/test.py', TINY_CLS, work_dir / 'best.pth', '--data-root', aptos,
                        '--work-dir', work_dir)
    assert status == 1
    assert out.splitlines()[-2:] == [
        f'test.py: error: checkpoint "{work_dir / "best.pth"}": no such file. Checkpoints in '
        f'{work_dir}: best_kappa_iter_3.pth, iter_6.pth.', f'test.py: {DEBUG_HINT}']


def _tensorboard_scalars(work_dir: Path, tag: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    (events, ) = work_dir.glob('*/vis_data/events.out.tfevents.*')
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def _mlflow_scalars(database: Path, key: str):
    with sqlite3.connect(database) as db:
        rows = db.execute('SELECT step, value FROM metrics WHERE key = ? ORDER BY step',
                          (key, )).fetchall()
    return rows


@pytest.mark.slow
def test_a_short_tracked_run_then_a_short_test(aptos, tmp_path):
    work_dir = tmp_path / 'work'
    status, out = _tool('tools/train.py', TINY_CLS, '--data-root', aptos, '--work-dir', work_dir,
                        '--iters', 2, '--batch-size', 1, '--vis-backend', 'tensorboard',
                        '--vis-backend', 'mlflow')
    assert status == 0, out[-3000:]
    assert 'Iter(train) [2/2]' in out and 'Iter(train) [3/' not in out
    assert (work_dir / 'iter_2.pth').is_file()
    for notice in ('The prefix is not set', '"FileClient" will be deprecated', 'HardDiskBackend'):
        assert notice not in out
    # The batch the run used is the dumped config's.
    assert 'batch_size=1,' in (work_dir / TINY_CLS.name).read_text().split('train_dataloader')[1]
    # The losses the console shows (MMEngine's smoothed values, 4 decimals), in both stores.
    logged = [float(line.split('loss: ')[1]) for line in out.splitlines()
              if 'Iter(train) [' in line]
    for scalars in (_tensorboard_scalars(work_dir, 'loss'),
                    _mlflow_scalars(work_dir / 'mlflow.db', 'loss')):
        assert [step for step, _ in scalars] == [1, 2]
        assert [value for _, value in scalars] == pytest.approx(logged, abs=1e-4)

    status, out = _tool('tools/test.py', TINY_CLS, work_dir / 'iter_2.pth', '--data-root', aptos,
                        '--work-dir', tmp_path / 'test', '--iters', 1, '--batch-size', 1,
                        '--out', tmp_path / 'preds.csv')
    assert status == 0, out[-3000:]
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if ' - mmengine - INFO - Test of ' in line)
    summary = lines[start:start + 4]
    assert summary[0].endswith(f' - mmengine - INFO - Test of {work_dir / "iter_2.pth"} on 1 '
                               'images: ' + summary[0].split('images: ')[1])
    assert summary[0].split('images: ')[1].startswith('accuracy=')
    assert summary[1:] == [
        f'Metrics: {tmp_path / "test" / "metrics" / "test_latest.json"}',
        'Split records (the tested split checked against them, or written): '
        f'{tmp_path / "test" / "splits" / "aptos2019_seed0.json"}',
        f'Per-image CSV: {tmp_path / "preds.csv"}']
    assert len((tmp_path / 'preds.csv').read_text().splitlines()) == 2  # header, 1 image


@pytest.mark.slow
def test_dino_epochs_cut_short_by_iters(tmp_path):
    """tiny_dino_stripes.py trains in epochs (IterBasedEpochsTrainLoop): --iters 3 at batch 2
    runs three iterations (an epoch and a half of the 4 training images)."""
    from test_tools.test_dino_learns import write_stripes

    data_root = write_stripes(tmp_path / 'stripes', per_class=4)
    work_dir = tmp_path / 'work'
    status, out = _tool('tools/train.py', CONFIGS / 'tiny_dino_stripes.py', '--data-root',
                        data_root, '--work-dir', work_dir, '--iters', 3, '--batch-size', 2)
    assert status == 0, out[-3000:]
    assert 'Saving checkpoint at 3 iterations' in out
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_3.pth']
    # MMEngine's one line per parameter option and per frozen parameter, summed up.
    assert 'paramwise_options' not in out and 'is skipped since' not in out
    assert ('AdamW updates 61 parameter tensors: 38 with weight_decay=0.0, 23 with '
            'weight_decay=1e-05; 63 frozen (requires_grad=False) left out: teacher.backbone.* '
            '54, teacher.head.* 8, head.last_layer.* 1') in out


@pytest.mark.slow
def test_an_unreadable_image_mid_run_points_to_the_dataset_check(aptos, tmp_path):
    data_root = tmp_path / 'aptos'
    shutil.copytree(aptos, data_root)
    for image in (data_root / 'train_images').iterdir():
        image.write_bytes(image.read_bytes()[:100])
    status, out = _tool('tools/train.py', TINY_CLS, '--data-root', data_root,
                        '--work-dir', tmp_path / 'work', '--iters', 1)
    assert status == 1
    lines = out.splitlines()
    assert lines[-1] == (
        'train.py: a file of the data could not be read (above). `python tools/check_dataset.py '
        f"{TINY_CLS} --data-root {data_root}` reads every file of the config's data and reports "
        'all problems at once.')
    # The loading step's error, last in the traceback the DataLoader worker sent, names the file.
    (error, ) = [line for line in lines if line.startswith('ValueError: "')]
    assert error.startswith(f'ValueError: "{data_root / "train_images"}/')
    assert 'could not be decoded (100 bytes' in error
