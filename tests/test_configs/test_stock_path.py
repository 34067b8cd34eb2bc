"""Every kind of shipped config runs on MMEngine's stock path, without medtrans' tools.

What an OpenMMLab user's own script does: ``register_all_modules()``, ``Config.fromfile``, plain
dict edits (data roots, the CPU-sized inputs and batches of :func:`shrink_for_cpu`, a work dir),
then ``RUNNERS.build(cfg)`` (the config's ``runner_type``) or ``Runner.from_cfg(cfg)``, and
``train()`` / ``test()``.
"""
import json
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS, DefaultScope
from mmengine.runner import Runner

from medtrans.engine import MedtransRunner
from medtrans.models.utils import save_state_dict
from medtrans.registry import MODELS
from medtrans.setup_env import register_all_modules

from .test_all_configs import retarget_data, shrink_for_cpu, synthetic_data  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs'

#: One config of every kind: the headline segmentation, CSAW-S, a classification cell per
#: family, a DINO pretraining per family, a k-NN evaluation; and what the test runs of it.
KINDS = {
    'deeplab3_deit_s_isic2018.py': 'train',
    'deeplabv3/deeplabv3_r50-d8_1xb8_plateau_csaw-s-512x512.py': 'train',
    'classification/deit-s/deit-s_in1k_1xb64_plateau_aptos2019-224.py': 'train',
    'classification/resnet50/resnet50_random_1xb64_plateau_isic2019-224.py': 'train',
    'classification/inception-v3/inception-v3_in1k_1xb64_plateau_chexpert-224.py': 'train',
    'classification/swin-t/swin-t_random_1xb64_plateau_cbis-ddsm-224.py': 'train',
    'dino/dino_deit-s_in1k_4xb64_300e_pcam-224-96.py': 'train',
    'dino/dino_resnet50_in1k_4xb64_300e_aptos2019-224-96.py': 'train',
    'dino/dino_inception-v3_in1k_4xb64_300e_isic2019-224-96.py': 'train',
    'dino/dino_swin-t_in1k_4xb64_300e_cbis-ddsm-224-96.py': 'train',
    'knn/deit-s/knn_deit-s_in1k_1xb64_aptos2019-224.py': 'test',
}


def _placeholders(node, path=''):
    if isinstance(node, str):
        return [path] if '{' in node and '}' in node else []
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _placeholders(v, f'{path}.{k}')]
    if isinstance(node, (list, tuple)):
        return [p for i, v in enumerate(node) for p in _placeholders(v, f'{path}.{i}')]
    return []


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(KINDS))
def test_config_runs_on_the_stock_path(name, tmp_path, synthetic_data):  # noqa: F811
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(str(CONFIGS / name))
    assert not _placeholders(cfg.to_dict()), 'a text placeholder the stock path cannot fill'
    retarget_data(cfg, synthetic_data)
    shrink_for_cpu(cfg)
    cfg.work_dir = str(tmp_path)
    weights = None
    if 'knn' in name:
        # The backbone a k-NN test evaluates is the file `pretrained` names (here, weights
        # drawn with another seed): Runner.test() itself initialises nothing.
        torch.manual_seed(123)
        with DefaultScope.overwrite_default_scope('medtrans'):
            weights = MODELS.build(cfg.model).backbone.state_dict()
        save_state_dict(weights, str(tmp_path / 'backbone.safetensors'))
        cfg.model.backbone.pretrained = str(tmp_path / 'backbone.safetensors')
    # MMEngine's own entry point: the runner the config names; the CSAW-S config also runs
    # with MMEngine's plain Runner.
    plain = 'csaw-s' in name
    runner = Runner.from_cfg(cfg) if plain else RUNNERS.build(cfg)
    assert type(runner) is (Runner if plain else MedtransRunner)
    if KINDS[name] == 'train':
        runner.train()
        assert runner.iter == 1 and (tmp_path / 'iter_1.pth').is_file()
    else:
        runner.test()
    if weights is not None:
        for key, value in runner.model.backbone.state_dict().items():
            assert torch.equal(value, weights[key]), key
    validated = cfg.get('val_cfg') and (cfg.get('train_cfg') or {}).get('val_begin', 1) <= 1
    mode = 'test_latest' if KINDS[name] == 'test' else 'val_1' if validated else None
    monitor = cfg.get('monitor')
    if monitor and mode:
        metrics = json.loads((tmp_path / 'metrics' / f'{mode}.json').read_text())['metrics']
        # The headline metric is reported first: the 'auto' monitor of the schedules.
        assert next(iter(metrics)) == monitor and math.isfinite(metrics[monitor])
        if KINDS[name] == 'train' and 'save_best' in cfg.default_hooks.checkpoint:
            assert [p.name for p in tmp_path.glob('best_*.pth')] == [f'best_{monitor}_iter_1.pth']


_USER_SCRIPT = '''
import sys
from mmengine.config import Config
from mmengine.registry import RUNNERS
from medtrans.setup_env import register_all_modules

register_all_modules()
cfg = Config.fromfile(sys.argv[1])
for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
    cfg[name].update(num_workers=0, persistent_workers=False)
    cfg[name].dataset.data_root = sys.argv[2]
cfg.train_cfg.update(max_iters=1, val_interval=1)
cfg.work_dir = sys.argv[3]
runner = RUNNERS.build(cfg)
runner.train()
print(type(runner).__name__, runner.iter)
'''


@pytest.mark.slow
def test_a_users_own_script_runs_a_config_in_a_fresh_interpreter(tmp_path):
    """No state of earlier tests (registries imported, a default scope): what a user's script
    sees. The demo config is the headline's whole stack at 128x128."""
    import subprocess
    import sys

    from medtrans.testing import make_synthetic_isic2018

    make_synthetic_isic2018(str(tmp_path / 'data'), num_train=10, num_val=0, size=(64, 64))
    config = CONFIGS / 'demo' / 'deeplab3_deit_s_demo_isic2018.py'
    result = subprocess.run(
        [sys.executable, '-c', _USER_SCRIPT, str(config), str(tmp_path / 'data'),
         str(tmp_path / 'work')], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == 'MedtransRunner 1'
    assert (tmp_path / 'work' / 'iter_1.pth').is_file()
