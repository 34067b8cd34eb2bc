"""Weights-only checkpoint loading, directly and through MMEngine's loader."""
import os

import pytest
import torch
from mmengine.runner import CheckpointLoader
from safetensors.torch import save_file

from medtrans.fileio import UnsafeCheckpointError, install_safe_checkpoint_loader, safe_load


def test_safe_load_reads_pth_and_safetensors(tmp_path):
    state = {'w': torch.arange(6.).reshape(2, 3)}
    torch.save(state, tmp_path / 'a.pth')
    save_file(state, str(tmp_path / 'a.safetensors'))
    for name in ('a.pth', 'a.safetensors'):
        assert torch.equal(safe_load(tmp_path / name)['w'], state['w'])


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        safe_load(tmp_path / 'nope.pth')


class _Payload:
    """Unpickling this object creates a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_pickled_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        torch.save({'state_dict': {'w': torch.zeros(1)}, 'x': _Payload(str(marker))}, f)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        safe_load(path)
    # MMEngine's own loader (used by load_from and --resume) goes through the same policy once
    # installed (register_all_modules() and MedtransRunner do).
    install_safe_checkpoint_loader()
    with pytest.raises(UnsafeCheckpointError):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()
    assert not os.path.exists('pwned')
