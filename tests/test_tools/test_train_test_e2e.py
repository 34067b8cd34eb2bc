"""End to end through the real tools: train, resume, test, 2-process train and test."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from medtrans.apis import (
    extract_features,
    inference,
    init_model,
    load_config,
    sliding_window,
)
from medtrans.datasets.splits import split_ids
from medtrans.testing import make_synthetic_isic2018

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / 'tests' / 'data' / 'configs' / 'tiny_deeplab3_deit_isic2018.py'

NUM_TRAIN = 10
SPLIT_RECORD = Path('splits') / 'isic2018_task1_seed0.json'

pytestmark = pytest.mark.slow


def _run(args, timeout=600):
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr


def _data_options(root):
    """The data folder for every dataloader, set in one place."""
    return ['--data-root', str(root)]


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('isic') / 'ISIC2018'
    make_synthetic_isic2018(root, num_train=NUM_TRAIN, num_val=0, size=(64, 64), seed=1)
    return root


@pytest.fixture(scope='module')
def trained(data_root, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('work')
    log = _run([sys.executable, 'tools/train.py', str(TINY), '--work-dir', str(work_dir),
                *_data_options(data_root)])
    return work_dir, log


def test_train_writes_checkpoints_split_and_metrics(trained):
    work_dir, log = trained
    assert (work_dir / 'iter_6.pth').is_file()
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith('iter_6.pth')
    assert list(work_dir.glob('best_IoU_iter_*.pth'))
    # The split record lives in the work dir, not in the data folder, and holds the seed-0
    # 90/10 split of the generator's ids (numbered from ISIC_0000000).
    record = json.loads((work_dir / SPLIT_RECORD).read_text())
    ids = [f'ISIC_{i:07d}' for i in range(NUM_TRAIN)]
    assert record == dict(
        meta=dict(dataset='ISIC2018Task1Dataset', val_fraction=0.1, split_seed=0),
        splits=split_ids(ids, {'train': 0.9, 'val': 0.1}, seed=0))
    metrics = json.loads((work_dir / 'metrics' / 'val_latest.json').read_text())
    assert 0.0 <= metrics['metrics']['IoU'] <= 1.0
    assert 'eta' in log
    scores = [json.loads(p.read_text())['metrics']['IoU']
              for p in (work_dir / 'metrics').glob('val_[0-9]*.json')]
    printed = re.search(r'Best validation IoU: (\d\.\d{4})$', log, flags=re.MULTILINE)
    assert printed and float(printed.group(1)) == round(max(scores), 4)


def test_test_tool_on_val_split_reproduces_recorded_val_metrics(trained, data_root, tmp_path):
    # Whichever iter_N.pth the work dir holds (a resumed run may have replaced iter_6.pth), the
    # run validated those very weights and recorded the metrics in val_N.json.
    work_dir, _ = trained
    (ckpt, ) = work_dir.glob('iter_*.pth')
    step = int(re.fullmatch(r'iter_(\d+)\.pth', ckpt.name).group(1))
    recorded = json.loads((work_dir / 'metrics' / f'val_{step}.json').read_text())
    test_dir, masks = tmp_path / 'test', tmp_path / 'masks'
    counts = tmp_path / 'counts.csv'
    _run([sys.executable, 'tools/test.py', str(TINY), str(ckpt), '--work-dir', str(test_dir),
          '--out-dir', str(masks), '--out', str(counts), *_data_options(data_root),
          '--cfg-options', 'test_dataloader.dataset.split=val',
          f'test_dataloader.dataset.split_file={work_dir / SPLIT_RECORD}'])
    tested = json.loads((test_dir / 'metrics' / 'test_latest.json').read_text())
    assert tested['checkpoint'] == str(ckpt)
    assert recorded['metrics'] and tested['metrics'] == recorded['metrics']

    # --out-dir: one challenge-format mask per image (ISIC_<id>_segmentation.png, one channel,
    # 0/255, the image's size), and the per-image Jaccard computed from the files is the
    # printed metric.
    ids = json.loads((work_dir / SPLIT_RECORD).read_text())['splits']['val']
    truth_dir = data_root / 'ISIC2018_Task1_Training_GroundTruth'
    assert sorted(p.name for p in masks.iterdir()) == sorted(
        f'{i}_segmentation.png' for i in ids)
    jaccards = []
    for sample_id in ids:
        pred = cv2.imread(str(masks / f'{sample_id}_segmentation.png'), cv2.IMREAD_UNCHANGED)
        truth = cv2.imread(str(truth_dir / f'{sample_id}_segmentation.png'), cv2.IMREAD_UNCHANGED)
        assert pred.dtype == np.uint8 and pred.shape == truth.shape
        assert set(np.unique(pred)) <= {0, 255}
        pred, truth = pred == 255, truth == 255
        union = int((pred | truth).sum())
        jaccards.append(int((pred & truth).sum()) / union if union else 1.0)
    assert tested['metrics']['Jaccard'] == pytest.approx(float(np.mean(jaccards)), abs=1e-12)

    # --out: each image's pixel counts, from which the pooled IoU is the printed one.
    rows = list(csv.DictReader(open(counts)))
    assert [r['sample_id'].split('/')[-1] for r in rows] == [f'{i}.jpg' for i in ids]
    tp, fp, fn = (sum(int(r[k]) for r in rows) for k in ('tp', 'fp', 'fn'))
    assert tested['metrics']['IoU'] == pytest.approx(tp / (tp + fp + fn), abs=1e-12)

    # tools/infer.py on the same images in a folder of their own (no labels) writes the same
    # masks, and so does the Python API.
    new_images = tmp_path / 'new_images'
    new_images.mkdir()
    for sample_id in ids:
        shutil.copy(data_root / 'ISIC2018_Task1-2_Training_Input' / f'{sample_id}.jpg', new_images)
    inferred = tmp_path / 'inferred'
    _run([sys.executable, 'tools/infer.py', str(TINY), str(ckpt), str(new_images),
          '--out-dir', str(inferred)])
    for sample_id in ids:
        name = f'{sample_id}_segmentation.png'
        assert (inferred / name).read_bytes() == (masks / name).read_bytes(), name
    assert sorted(p.name for p in (inferred / 'overlays').iterdir()) == sorted(
        f'{i}.jpg' for i in ids)
    model = init_model(str(TINY), str(ckpt))
    images = [str(new_images / f'{i}.jpg') for i in ids]
    for sample_id, sample in zip(ids, inference(model, images, batch_size=2)):
        written = cv2.imread(str(masks / f'{sample_id}_segmentation.png'), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(sample.pred_sem_seg.data[0].numpy() * 255, written)
    embeddings = extract_features(model, images)
    assert embeddings.shape == (len(ids), model.backbone.num_features)

    # Sliding windows of the model's input size over an image larger than it, at full size.
    big = tmp_path / 'big.png'
    cv2.imwrite(str(big), np.random.default_rng(0).integers(0, 256, (150, 200, 3), np.uint8))
    cfg = sliding_window(load_config(str(TINY)))
    assert cfg.model.test_cfg == dict(mode='slide', crop_size=(128, 128), stride=(85, 85))
    assert [t['type'] for t in cfg.test_dataloader.dataset.pipeline] == [
        'LoadImageStrict', 'LoadBinaryMask', 'mmseg.PackSegInputs']  # no Resize: full size
    (sample, ) = inference(init_model(cfg, str(ckpt)), [str(big)])
    assert tuple(sample.pred_sem_seg.data.shape) == (1, 150, 200)


def test_resume_continues_from_last_checkpoint(trained, data_root):
    work_dir, _ = trained
    log = _run([sys.executable, 'tools/train.py', str(TINY), '--work-dir', str(work_dir),
                '--resume', *_data_options(data_root), '--cfg-options', 'train_cfg.max_iters=9'])
    assert 'resumed' in log.lower() and 'iter_6.pth' in log
    assert (work_dir / 'iter_9.pth').is_file()


def test_test_tool_saves_overlays_and_metrics_with_only_the_tested_split(trained, tmp_path):
    # The official test set alone on disk: neither the training images nor their masks.
    test_only = tmp_path / 'ISIC2018'
    make_synthetic_isic2018(test_only, num_train=1, num_val=0, num_test=2, size=(64, 64), seed=2)
    for folder in test_only.glob('*Training*'):
        shutil.rmtree(folder)
    work_dir, _ = trained
    ckpt = (work_dir / 'last_checkpoint').read_text().strip()
    show_dir = tmp_path / 'show'
    _run([sys.executable, 'tools/test.py', str(TINY), str(ckpt), '--work-dir', str(work_dir),
          '--show-dir', str(show_dir), *_data_options(test_only),
          '--cfg-options', 'test_dataloader.dataset.split=official_test'])
    # One drawing per image, named after it (as tools/infer.py names its overlays).
    overlays = sorted(str(p.relative_to(show_dir)) for p in show_dir.rglob('*'))
    assert overlays == sorted(f'{p.stem}.png' for p in
                              (test_only / 'ISIC2018_Task1-2_Test_Input').glob('*.jpg'))
    assert len(overlays) == 2
    metrics = json.loads((work_dir / 'metrics' / 'test_latest.json').read_text())
    assert set(metrics['metrics']) >= {'IoU', 'Jaccard', 'thresholded_Jaccard', 'Dice'}


def test_dist_test_two_cpu_processes_matches_single_process(trained, data_root, free_port,
                                                            tmp_path):
    work_dir, _ = trained
    ckpt = (work_dir / 'last_checkpoint').read_text().strip()
    single, dist = tmp_path / 'single', tmp_path / 'dist'
    _run([sys.executable, 'tools/test.py', str(TINY), ckpt, '--work-dir', str(single),
          *_data_options(data_root)])
    _run(['env', f'PYTHON={sys.executable}', f'PORT={free_port}', 'bash', 'tools/dist_test.sh',
          str(TINY), ckpt, '2', '--work-dir', str(dist), *_data_options(data_root)])
    results = [json.loads((d / 'metrics' / 'test_latest.json').read_text())['metrics']
               for d in (single, dist)]
    assert results[0] == pytest.approx(results[1], abs=1e-12)


def test_dist_train_two_cpu_processes(data_root, free_port, tmp_path):
    work_dir = tmp_path / 'dist'
    env_python = f'PYTHON={sys.executable}'
    log = _run(['env', env_python, f'PORT={free_port}', 'bash', 'tools/dist_train.sh', str(TINY),
                '2', '--work-dir', str(work_dir), *_data_options(data_root), '--cfg-options',
                'train_cfg.max_iters=3'])
    assert (work_dir / 'iter_3.pth').is_file()
    assert 'Distributed training: True' in log
    assert log.count('Iter(train) [3/3]') == 1  # logged once, by rank 0


FAKE_SRUN = """#!{python}
# A stand-in for Slurm's srun: records its arguments and starts --ntasks copies of the command
# with the environment srun gives each task (one node).
import os, subprocess, sys
args = sys.argv[1:]
with open(os.environ['FAKE_SRUN_LOG'], 'w') as log:
    log.write(' '.join(args))
ntasks, i = 1, 0
while args[i].startswith('-'):
    option = args[i]
    if option in ('-p', '-N', '-n'):
        i += 1  # its value follows
    elif option.startswith('--ntasks='):
        ntasks = int(option.split('=')[1])
    i += 1
command = args[i:]
procs = [subprocess.Popen(command, env=dict(
    os.environ, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), SLURM_NTASKS=str(ntasks),
    SLURM_NODELIST='fakenode', SLURM_JOB_ID='1')) for rank in range(ntasks)]
sys.exit(max(p.wait() for p in procs))
"""


def test_slurm_train_starts_its_ranks_through_srun(data_root, free_port, tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN.format(python=sys.executable))
    (bin_dir / 'scontrol').write_text('#!/bin/sh\necho 127.0.0.1\n')  # show hostname
    for tool in ('srun', 'scontrol'):
        (bin_dir / tool).chmod(0o755)
    work_dir, srun_log = tmp_path / 'slurm', tmp_path / 'srun.log'
    log = _run(['env', f'PATH={bin_dir}:{os.environ["PATH"]}', f'MASTER_PORT={free_port}',
                f'FAKE_SRUN_LOG={srun_log}', f'PYTHON={sys.executable}', 'GPUS=2',
                'GPUS_PER_NODE=2', 'CPUS_PER_TASK=1',
                'bash', 'tools/slurm_train.sh', 'gpu', 'tiny', str(TINY), '--work-dir',
                str(work_dir), *_data_options(data_root), '--cfg-options',
                'train_cfg.max_iters=2'])
    srun_args = srun_log.read_text()
    assert srun_args.startswith('-p gpu --job-name=tiny --gres=gpu:2 --ntasks=2 ')
    assert f'tools/train.py {TINY} --launcher slurm --work-dir {work_dir}' in srun_args
    assert (work_dir / 'iter_2.pth').is_file()
    assert 'Distributed training: True' in log
    assert log.count('Iter(train) [2/2]') == 1  # logged once, by rank 0
