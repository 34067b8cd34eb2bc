"""Every config under configs/ loads and its model builds on the CPU."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from medtrans.apis import fill_work_dir
from medtrans.registry import MODELS
from medtrans.utils import register_all_modules

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts)


def test_configs_found():
    assert REPO / 'configs' / 'deeplab3_deit_s_isic2018.py' in CONFIGS


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: str(p.relative_to(REPO / 'configs')))
def test_config_builds(path, tmp_path):
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'medtrans'
    fill_work_dir(cfg._cfg_dict, str(tmp_path))
    assert '{work_dir}' not in cfg.pretty_text
    with DefaultScope.overwrite_default_scope('medtrans'):
        model = MODELS.build(cfg.model)
    model.eval()
    size = cfg.model.data_preprocessor.get('size', (64, 64))
    with torch.no_grad():
        logits = model(torch.rand(1, 3, *size), mode='tensor')
    assert logits.shape[:2] == (1, cfg.model.decode_head.num_classes)
