"""tools/misc/export_backbone.py: a DINO checkpoint's teacher (or student) backbone, written as a
weight file that the ImageNet + DINO classification configs load with no missing or unexpected
key, and whose weights are the checkpoint's."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import get_state_dict, save_checkpoint

from medtrans.apis import export_backbone, load_config
from medtrans.models.selfsup import DINO
from medtrans.registry import MODELS
from medtrans.setup_env import register_all_modules

REPO = Path(__file__).resolve().parents[2]
CLS_CONFIG = REPO / 'configs' / 'classification' / 'deit-s' / \
    'deit-s_in1k-dino_1xb64_plateau_isic2019-224.py'
HEAD = dict(type='DINOHead', out_channels=32, hidden_channels=16, bottleneck_channels=8)


def _dino_checkpoint(work_dir: Path, backbone: dict) -> dict:
    """Write a DINO run's checkpoint (MMEngine's format) whose teacher differs from its student."""
    register_all_modules()
    model = DINO(backbone=backbone, head=HEAD)
    model.init_weights()
    with torch.no_grad():
        for param in model.teacher.parameters():
            param.add_(torch.randn_like(param))
        for module in model.teacher.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.add_(1.)
    work_dir.mkdir()
    save_checkpoint(dict(meta=dict(iter=3), state_dict=get_state_dict(model)),
                    str(work_dir / 'iter_3.pth'))
    return model.state_dict()


def _run_tool(*args):
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, 'tools/misc/export_backbone.py', *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('part', ['teacher', 'student'])
def test_exported_backbone_initialises_the_dino_classification_config(tmp_path, part):
    state = _dino_checkpoint(tmp_path / 'run', dict(type='DeiT', arch='deit-tiny'))
    out = tmp_path / f'{part}.safetensors'
    if part == 'teacher':  # the command line, on the run's work dir (its latest checkpoint)
        result = _run_tool(tmp_path / 'run', out)
        assert result.returncode == 0, result.stderr[-3000:]
        assert 'the teacher backbone' in result.stdout
    else:
        export_backbone(str(tmp_path / 'run' / 'iter_3.pth'), str(out), part='student')

    cfg = load_config(str(CLS_CONFIG))  # the ImageNet + DINO cell; DeiT-Ti to keep it small
    cfg.model.backbone.update(arch='deit-tiny', pretrained=str(out))
    cfg.model.head.in_channels = 192
    with DefaultScope.overwrite_default_scope('medtrans'):
        classifier = MODELS.build(cfg.model)
    classifier.init_weights()  # loads `pretrained` exactly: any missing/unexpected key raises
    prefix = 'teacher.backbone.' if part == 'teacher' else 'backbone.'
    loaded = classifier.backbone.state_dict()
    assert loaded.keys() == {k[len(prefix):] for k in state if k.startswith(prefix)}
    for key, value in loaded.items():
        assert torch.equal(value, state[prefix + key]), key


def test_cnn_export_keeps_batch_norm_statistics(tmp_path):
    state = _dino_checkpoint(tmp_path / 'run', dict(type='TimmResNet', depth=18))
    out = tmp_path / 'teacher.pth'
    weights = export_backbone(str(tmp_path / 'run' / 'iter_3.pth'), str(out))
    assert any(key.endswith('running_mean') for key in weights)
    backbone = MODELS.build(dict(type='TimmResNet', depth=18, out_type='embedding',
                                 pretrained=str(out)))
    backbone.init_weights()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, state['teacher.backbone.' + key]), key


def test_checkpoint_without_a_teacher_is_refused_naming_its_keys(tmp_path):
    register_all_modules()
    backbone = MODELS.build(dict(type='DeiT', arch='deit-tiny'))
    (tmp_path / 'run').mkdir()
    checkpoint = tmp_path / 'run' / 'iter_1.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in backbone.state_dict().items()}),
               checkpoint)
    with pytest.raises(ValueError, match=r'no "teacher\.backbone\.\*" keys.*\[\'backbone\'\]'):
        export_backbone(str(checkpoint), str(tmp_path / 'out.safetensors'))
    weights = export_backbone(str(checkpoint), str(tmp_path / 'out.safetensors'), part='student')
    assert weights.keys() == backbone.state_dict().keys()


def test_bad_paths_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match='no checkpoint'):
        export_backbone(str(tmp_path), str(tmp_path / 'out.pth'))
    with pytest.raises(FileNotFoundError, match='not found'):
        export_backbone(str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth'))
    with pytest.raises(ValueError, match='.safetensors or .pth'):
        export_backbone(str(tmp_path / 'missing.pth'), str(tmp_path / 'out.bin'))
    with pytest.raises(ValueError, match='part'):
        export_backbone(str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth'), part='head')
