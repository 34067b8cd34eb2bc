"""tools/misc/download_timm_weights.py and its SHA-256 manifest, without downloading anything."""
import hashlib
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file

from medtrans.models.utils import (
    MANIFEST_NAME,
    STUDY_TIMM_WEIGHTS,
    read_manifest,
    read_state_dict,
    update_manifest,
    verify_weight_file,
)

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'misc' / 'download_timm_weights.py'
NAMES = ['resnet18.tv_in1k', 'deit_tiny_patch16_224.fb_in1k']


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('download_timm_weights', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_hub(monkeypatch):
    """timm.create_model(name, pretrained=True) without the hub: random weights, seeded by name.

    Returns the names it was asked for and the state dicts it returned.
    """
    create = timm.create_model
    made = {}

    def fake_create_model(name, pretrained=False, **kwargs):
        assert pretrained, 'the tool must ask timm for the pretrained weights'
        torch.manual_seed(len(made))
        model = create(name, pretrained=False, **kwargs)
        made[name] = model.state_dict()
        return model

    monkeypatch.setattr(timm, 'create_model', fake_create_model)
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    return made


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_saves_state_dicts_with_a_sha256sum_manifest(tool, fake_hub, tmp_path, capsys):
    tool.main([str(tmp_path), '--models', *NAMES])
    assert sorted(fake_hub) == sorted(NAMES)
    manifest = (tmp_path / MANIFEST_NAME).read_text().splitlines()
    expected = sorted(f'{_sha256(tmp_path / f"{n}.safetensors")}  {n}.safetensors'
                      for n in NAMES)
    assert manifest == expected
    for name in NAMES:
        saved = load_file(str(tmp_path / f'{name}.safetensors'))
        assert saved.keys() == fake_hub[name].keys()  # classifier included, as timm holds it
        for key, value in fake_hub[name].items():
            assert torch.equal(saved[key], value), key
    assert 'saved' in capsys.readouterr().out
    if shutil.which('sha256sum'):  # coreutils reads the same manifest
        subprocess.run(['sha256sum', '--check', '--strict', MANIFEST_NAME], cwd=tmp_path,
                       check=True, capture_output=True)


def test_second_run_keeps_verified_files_and_refetches_damaged_ones(tool, fake_hub, tmp_path,
                                                                    capsys):
    tool.main([str(tmp_path), '--models', *NAMES])
    fake_hub.clear()
    tool.main([str(tmp_path), '--models', *NAMES])
    assert not fake_hub
    assert capsys.readouterr().out.count('already present, checksum matches') == len(NAMES)

    damaged = tmp_path / f'{NAMES[0]}.safetensors'
    damaged.write_bytes(damaged.read_bytes()[:-10])  # an interrupted copy
    with pytest.raises(ValueError, match=MANIFEST_NAME) as info:
        read_state_dict(str(damaged))  # the loader refuses it
    assert str(damaged) in str(info.value)
    tool.main([str(tmp_path), '--models', *NAMES])
    assert list(fake_hub) == [NAMES[0]]
    assert verify_weight_file(str(damaged)) == _sha256(damaged)
    assert len(read_manifest(str(tmp_path))) == len(NAMES)


def test_refuses_to_run_offline(tool, fake_hub, tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(SystemExit, match='HF_HUB_OFFLINE'):
        tool.main([str(tmp_path)])
    assert not fake_hub


def test_name_without_tag_is_an_error(tool, fake_hub, tmp_path):
    with pytest.raises(ValueError, match='pretrained tag'):
        tool.main([str(tmp_path), '--models', 'resnet50'])


def test_default_list_is_the_study_weights_known_to_timm(tool):
    assert tool.parse_args(['out']).models == list(STUDY_TIMM_WEIGHTS)
    assert len(STUDY_TIMM_WEIGHTS) == 8
    for name in STUDY_TIMM_WEIGHTS:
        architecture = name.split('.')[0]
        assert name in timm.list_pretrained(f'{architecture}.*'), name


def test_manifest_keeps_other_entries_and_names_bad_lines(tmp_path):
    update_manifest(str(tmp_path), {'a.safetensors': 'A' * 64})
    update_manifest(str(tmp_path), {'b.pth': 'b' * 64})
    assert read_manifest(str(tmp_path)) == {'a.safetensors': 'a' * 64, 'b.pth': 'b' * 64}
    (tmp_path / MANIFEST_NAME).write_text(f'{"c" * 64} *c.pth\nnot a checksum line\n')
    with pytest.raises(ValueError, match=r'line 2: expected') as info:
        read_manifest(str(tmp_path))
    assert str(tmp_path / MANIFEST_NAME) in str(info.value)


def test_file_not_in_manifest_is_not_verified(tmp_path):
    path = tmp_path / 'mine.pth'
    torch.save({'w': torch.ones(2)}, path)
    update_manifest(str(tmp_path), {'other.pth': '0' * 64})
    assert verify_weight_file(str(path)) is None
    assert torch.equal(read_state_dict(str(path))['w'], torch.ones(2))
