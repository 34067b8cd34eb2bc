"""``tools/knn_eval.py`` end to end: its metrics JSON equals k-NN computed outside the Runner."""
import json
import os
import subprocess
import sys

import pytest
from test_engine.knn_setup import (
    APTOS_CONFIG,
    REPO,
    TEMPERATURE,
    K,
    build_model,
    cli_options,
    reference_kappa,
    save_weights,
    tiny_options,
    write_aptos,
)

from medtrans.apis import load_config, prepare_knn_config

pytestmark = pytest.mark.slow


def test_tool_writes_the_metrics_of_knn_on_the_checkpoints_features(tmp_path):
    data_root = write_aptos(tmp_path / 'APTOS2019')
    work_dir = tmp_path / 'work'
    options = tiny_options(data_root)
    cfg = prepare_knn_config(load_config(str(APTOS_CONFIG), options), str(APTOS_CONFIG),
                             work_dir=str(work_dir))
    model = build_model(cfg)
    checkpoint = save_weights(model, tmp_path)['runner']

    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, 'tools/knn_eval.py', str(APTOS_CONFIG), str(checkpoint),
         '--work-dir', str(work_dir), '--k', str(K), '--temperature', str(TEMPERATURE),
         '--cfg-options', *cli_options(options)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    record = json.loads((work_dir / 'metrics' / 'test_latest.json').read_text())
    assert record['mode'] == 'test'
    assert record['checkpoint'] == str(checkpoint)
    assert f'k={K}, T={TEMPERATURE}' in result.stdout + result.stderr
    # The split the tool recorded in its work dir is the one the reference reads.
    assert record['metrics'] == reference_kappa(model, cfg)
