"""Inter-annotator agreement of CSAW-S's test set, through the shipped config and the tool."""
import json
import subprocess
import sys
from itertools import combinations

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from medtrans.analysis import annotator_agreement
from medtrans.testing.layouts.csaw_s import write_synthetic_csaw_s

CONFIG = 'configs/deeplabv3/deeplabv3_deit-s_1xb8_plateau_csaw-s-512x512.py'


def _brute_force(files, a, b):
    """Pooled foreground IoU and mean per-image Jaccard of b's masks against a's."""
    inter = union = 0
    jaccards = []
    for path_a, path_b in zip(files[f'test_masks_{a}'], files[f'test_masks_{b}']):
        mask_a = cv2.imread(path_a, cv2.IMREAD_GRAYSCALE) > 0
        mask_b = cv2.imread(path_b, cv2.IMREAD_GRAYSCALE) > 0
        i, u = int((mask_a & mask_b).sum()), int((mask_a | mask_b).sum())
        inter, union = inter + i, union + u
        jaccards.append(i / u if u else 1.0)
    return inter / union, float(np.mean(jaccards))


@pytest.fixture(scope='module')
def csaw(tmp_path_factory):
    root = tmp_path_factory.mktemp('csaw') / 'CsawS'
    return root, write_synthetic_csaw_s(str(root), train_patients=2, test_patients=3)


def test_agreement_of_every_pair_equals_a_brute_force_count(csaw, repo_root):
    root, files = csaw
    cfg = Config.fromfile(str(repo_root / CONFIG))
    dataset = dict(cfg.test_dataloader.dataset, data_root=str(root))
    scores = annotator_agreement(dataset)
    assert list(scores) == ['1-2', '1-3', '2-3']
    for a, b in combinations((1, 2, 3), 2):
        iou, jaccard = _brute_force(files, a, b)
        assert scores[f'{a}-{b}']['IoU'] == pytest.approx(iou, abs=1e-12)
        assert scores[f'{a}-{b}']['Jaccard'] == pytest.approx(jaccard, abs=1e-12)
        assert scores[f'{a}-{b}']['IoU'] < 1  # the synthetic annotators differ
    assert list(annotator_agreement(dataset, [3, 1])) == ['1-3']
    with pytest.raises(ValueError, match='at least two annotators'):
        annotator_agreement(dataset, [2])


def test_the_tool_prints_and_writes_the_scores(csaw, repo_root, tmp_path):
    root, files = csaw
    out = tmp_path / 'agreement.json'
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/annotator_agreement.py', CONFIG, '--data-root',
         str(root), '--annotators', '1', '2', '--out', str(out)],
        cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(out.read_text())
    assert list(scores) == ['1-2']
    assert scores['1-2']['IoU'] == pytest.approx(_brute_force(files, 1, 2)[0], abs=1e-12)
    assert f'{scores["1-2"]["IoU"]:.4f}' in proc.stdout
