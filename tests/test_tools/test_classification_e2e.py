"""Classification end to end through the real tools, one shipped config per task type.

Each config is made CPU-sized without changing its components (the helpers of the config
tests), pointed at its dataset's synthetic layout, trained for two iterations with
``tools/train.py`` and tested with ``tools/test.py --out``. The test metrics that the run
records must equal the dataset's metric recomputed by its functional twin from the written
predictions, and the predictions must list exactly the dataset's samples with their labels.
"""
import csv
import json
import math
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.registry import DefaultScope
from test_configs.test_all_configs import (
    retarget_data,
    shrink_for_cpu,
    synthetic_data,  # noqa: F401  (fixture)
)

from medtrans.apis import infer_to_dir, init_model, load_config, prepare_config
from medtrans.evaluation.functional import (
    balanced_recall,
    binary_roc_auc,
    class_mean,
    cohen_kappa,
    per_class_roc_auc,
)
from medtrans.registry import DATASETS

REPO = Path(__file__).resolve().parents[2]
CLS = REPO / 'configs' / 'classification'

pytestmark = pytest.mark.slow


def _kappa(probs, truth):
    return dict(kappa=cohen_kappa(probs, truth['gt_label']))


def _recall(probs, truth):
    return dict(recall=balanced_recall(probs, truth['gt_label']))


def _binary_auc(probs, truth):
    return dict(auc=binary_roc_auc(probs, truth['gt_label']))


def _multi_label_auc(probs, truth):
    mean, _ = class_mean(per_class_roc_auc(probs, truth['gt']))
    return dict(auc=mean)


#: (config, task, extra dataset fields, the metric recomputed from the predictions)
CASES = [
    ('deit-s/deit-s_random_1xb64_plateau_aptos2019-224.py', 'ordinal', {}, _kappa),
    ('resnet18/resnet18_in1k_1xb64_plateau_isic2019-224.py', 'multi-class', {}, _recall),
    ('resnet50/resnet50_in1k_1xb64_plateau_pcam-224.py', 'binary', {}, _binary_auc),
    ('deit-s/deit-s_in1k_1xb64_plateau_chexpert-224.py', 'multi-label U-Ignore',
     dict(uncertainty='ignore'), _multi_label_auc),
]


def _run(args):
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    result = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr


def _read_predictions(path):
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    probs = np.array([[float(r[k]) for k in r if k.startswith('prob_')] for r in rows])
    truth = dict(ids=[r['sample_id'] for r in rows])
    if 'gt_label' in rows[0]:
        truth['gt_label'] = np.array([int(r['gt_label'] or -1) for r in rows])
    else:
        truth['gt'] = np.array([[float(r[k]) for k in r if k.startswith('gt_')] for r in rows])
    return probs, truth


def _same(recorded, expected):
    return (recorded is None and math.isnan(expected)) or recorded == expected


@pytest.mark.parametrize('config, task, fields, recompute', CASES,
                         ids=[case[1] for case in CASES])
def test_train_test_and_predictions(config, task, fields, recompute, tmp_path, synthetic_data):  # noqa: F811
    cfg = load_config(str(CLS / config))
    shrink_for_cpu(cfg)
    retarget_data(cfg, synthetic_data)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.update(fields)
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    cfg.default_hooks.checkpoint.interval = 2
    tiny = tmp_path / 'tiny.py'
    cfg.dump(str(tiny))
    work_dir = tmp_path / 'work'

    _run(['tools/train.py', str(tiny), '--work-dir', str(work_dir)])
    preds = tmp_path / 'preds.csv'
    _run(['tools/test.py', str(tiny), str(work_dir / 'iter_2.pth'), '--work-dir',
          str(work_dir), '--out', str(preds)])

    probs, truth = _read_predictions(preds)
    recorded = json.loads((work_dir / 'metrics' / 'test_latest.json').read_text())['metrics']
    for key, value in recompute(probs, truth).items():
        assert _same(recorded[key], value), (key, recorded[key], value)
    # Every test sample once, in dataset order, with the dataset's own labels.
    test_cfg = prepare_config(load_config(str(tiny)), str(tiny), work_dir=str(work_dir))
    dataset_cfg = dict(test_cfg.test_dataloader.dataset, pipeline=[])
    with DefaultScope.overwrite_default_scope('medtrans'):
        dataset = DATASETS.build(dataset_cfg)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert truth['ids'] == [info['sample_id'] for info in infos]
    if 'gt_label' in truth:
        assert truth['gt_label'].tolist() == [info['gt_label'] for info in infos]
    else:
        assert truth['gt'].tolist() == [info['gt_score'].tolist() for info in infos]
        if fields.get('uncertainty') == 'ignore':
            assert (truth['gt'] == -1).any()  # the layout has uncertain labels, kept masked

    # Inference on the test images without their labels (tools/infer.py's function) gives
    # the same probabilities, batched as the test run batched them.
    if task == 'ordinal':  # an image-file dataset
        model = init_model(test_cfg, str(work_dir / 'iter_2.pth'))
        infer_to_dir(model, [info['img_path'] for info in infos], str(tmp_path / 'inferred'),
                     batch_size=test_cfg.test_dataloader.batch_size)
        written = tmp_path / 'inferred' / 'predictions.csv'
        inferred, unlabelled = _read_predictions(written)
        np.testing.assert_array_equal(inferred, probs)
        # Named by file, relative to the folder holding the images; no ground-truth column.
        assert unlabelled['ids'] == [osp.basename(info['img_path']) for info in infos]
        assert written.read_text().splitlines()[0] == ','.join(
            ['sample_id', 'pred_label'] + [f'prob_{c}' for c in dataset.metainfo['classes']])
