"""k-NN under 2 gloo processes equals the same k-NN computed in one process."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from medtrans.apis import load_config, prepare_knn_config
from medtrans.datasets import APTOS2019Dataset
from medtrans.evaluation.functional import accuracy, cohen_kappa

from .knn_setup import (
    APTOS_CONFIG,
    REPO,
    TEMPERATURE,
    K,
    build_model,
    cli_options,
    reference_scores,
    save_weights,
    tiny_options,
    write_aptos,
)

pytestmark = pytest.mark.slow


def test_two_processes_equal_one(free_port, tmp_path):
    # 41 images: 29 in the train split, so the sampler pads the memory of the second rank.
    data_root = write_aptos(tmp_path / 'APTOS2019', num_images=41)
    work_dir, out = tmp_path / 'work', tmp_path / 'preds.csv'
    options = tiny_options(data_root)
    cfg = prepare_knn_config(load_config(str(APTOS_CONFIG), options), str(APTOS_CONFIG),
                             work_dir=str(work_dir))
    model = build_model(cfg)
    checkpoint = save_weights(model, tmp_path)['runner']

    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={free_port}', 'tools/knn_eval.py', str(APTOS_CONFIG), str(checkpoint),
         '--work-dir', str(work_dir), '--k', str(K), '--temperature', str(TEMPERATURE),
         '--out', str(out), '--launcher', 'pytorch', '--cfg-options', *cli_options(options)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert 'Distributed training: True' in log and 'memory of 29 embeddings' in log

    expected, samples, _ = reference_scores(model, cfg, num_classes=5)
    rows = list(csv.DictReader(out.open()))
    assert [row['sample_id'] for row in rows] == [s.sample_id for s in samples]
    classes = APTOS2019Dataset.METAINFO['classes']
    probs = np.array([[float(row[f'prob_{c}']) for c in classes] for row in rows])
    # Other batches in each process: embeddings may differ in the last bits.
    np.testing.assert_allclose(probs, expected.numpy(), rtol=1e-5, atol=1e-6)
    labels = torch.cat([s.gt_label for s in samples])
    record = json.loads((work_dir / 'metrics' / 'test_latest.json').read_text())
    assert record['metrics'] == pytest.approx(
        dict(kappa=cohen_kappa(expected, labels), accuracy=accuracy(expected, labels)),
        abs=1e-12)

