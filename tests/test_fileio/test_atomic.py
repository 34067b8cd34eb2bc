"""Atomic writes: a failure at any step of a write leaves the previous file intact and no
temporary file behind; which checkpoint files of a real Runner go through the atomic backend."""
import io
import os
import stat
import tempfile

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from medtrans.fileio import (
    AtomicLocalBackend,
    atomic_write_bytes,
    atomic_write_text,
    remove_stale_temporaries,
)


def _checkpoint_bytes(value: float) -> bytes:
    buf = io.BytesIO()
    torch.save({'w': torch.full((1000, ), value)}, buf)
    return buf.getvalue()


def test_atomic_write_replaces_content(tmp_path):
    path = tmp_path / 'sub' / 'f.bin'
    atomic_write_bytes(path, b'one')
    atomic_write_bytes(path, b'two')
    assert path.read_bytes() == b'two'
    assert os.listdir(path.parent) == ['f.bin']


def test_atomic_files_get_the_permissions_open_gives(tmp_path):
    # mkstemp's temporary files are 0600; a written file must not stay so (shared data folders).
    plain = tmp_path / 'plain'
    plain.write_bytes(b'x')
    atomic_write_bytes(tmp_path / 'atomic', b'x')
    mode = stat.S_IMODE(os.stat(tmp_path / 'atomic').st_mode)
    assert mode == stat.S_IMODE(os.stat(plain).st_mode)
    # A replaced file keeps its mode, as open('w') keeps it.
    os.chmod(tmp_path / 'atomic', 0o640)
    atomic_write_bytes(tmp_path / 'atomic', b'y')
    assert stat.S_IMODE(os.stat(tmp_path / 'atomic').st_mode) == 0o640


def test_backend_is_selectable_by_config(tmp_path):
    backend = get_file_backend(str(tmp_path), backend_args=dict(backend='medtrans_atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put_text('iter_3.pth', str(tmp_path / 'f.txt'))
    assert (tmp_path / 'f.txt').read_text() == 'iter_3.pth'


class _TornFile:
    """A file that takes half of the first write, then raises ``error``."""

    def __init__(self, f, error: BaseException) -> None:
        self._f = f
        self._error = error

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()

    def write(self, data: bytes) -> int:
        self._f.write(data[:len(data) // 2])
        self._f.flush()
        raise self._error

    def flush(self) -> None:
        self._f.flush()

    def fileno(self) -> int:
        return self._f.fileno()


def _fail_write(monkeypatch, error):
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, 'fdopen',
                        lambda fd, *args, **kwargs: _TornFile(real_fdopen(fd, *args, **kwargs),
                                                              error))


def _fail_fsync(monkeypatch, error):
    def fsync(fd):
        raise error
    monkeypatch.setattr(os, 'fsync', fsync)


def _fail_replace(monkeypatch, error):
    def replace(src, dst):
        # The temporary file is complete when the rename fails.
        assert os.path.getsize(src) > 0
        raise error
    monkeypatch.setattr(os, 'replace', replace)


@pytest.mark.parametrize('inject', [_fail_write, _fail_fsync, _fail_replace])
@pytest.mark.parametrize('error', [OSError(5, 'Input/output error'), KeyboardInterrupt()],
                         ids=['OSError', 'KeyboardInterrupt'])
def test_failed_write_keeps_previous_content_and_leaves_no_temporary(tmp_path, monkeypatch,
                                                                     inject, error):
    path = tmp_path / 'latest.pth'
    old = _checkpoint_bytes(1.0)
    atomic_write_bytes(path, old)
    inject(monkeypatch, error)
    with pytest.raises(type(error)):
        AtomicLocalBackend().put(_checkpoint_bytes(2.0), path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert torch.equal(torch.load(path, weights_only=True)['w'], torch.full((1000, ), 1.0))
    assert os.listdir(tmp_path) == ['latest.pth']


def test_failed_first_write_creates_nothing(tmp_path, monkeypatch):
    _fail_replace(monkeypatch, OSError(5, 'Input/output error'))
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / 'split.json', '{}\n')
    assert os.listdir(tmp_path) == []


class _Linear(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, mode='tensor'):
        pred = self.linear(inputs)
        return dict(loss=pred.pow(2).mean()) if mode == 'loss' else pred


@pytest.mark.slow
def test_checkpoints_go_through_the_backend_but_the_last_checkpoint_pointer_does_not(
        tmp_path, monkeypatch):
    # What fileio/atomic.py and docs/reliability.md say: MMEngine's CheckpointHook writes
    # `last_checkpoint` in place, bypassing the backend, so only the checkpoints are atomic.
    written = []
    real_put, real_put_text = AtomicLocalBackend.put, AtomicLocalBackend.put_text

    def put(self, obj, filepath):
        written.append(os.path.basename(filepath))
        real_put(self, obj, filepath)

    def put_text(self, obj, filepath, encoding='utf-8'):
        written.append(os.path.basename(filepath))
        real_put_text(self, obj, filepath, encoding)

    monkeypatch.setattr(AtomicLocalBackend, 'put', put)
    monkeypatch.setattr(AtomicLocalBackend, 'put_text', put_text)
    runner = Runner(
        model=_Linear(),
        work_dir=str(tmp_path),
        train_dataloader=dict(dataset=[dict(inputs=torch.ones(2))] * 4, batch_size=2,
                              sampler=dict(type='InfiniteSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=2),
        default_hooks=dict(checkpoint=dict(
            type='CheckpointHook', interval=1, by_epoch=False,
            backend_args=dict(backend='medtrans_atomic_local'))),
        default_scope='mmengine')
    runner.train()
    assert written == ['iter_1.pth', 'iter_2.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_2.pth')


def _leftover(folder, name: str) -> str:
    """The temporary file a kill between write and rename leaves: made as the writer makes it."""
    fd, path = tempfile.mkstemp(prefix=f'.{name}.', suffix='.tmp', dir=str(folder))
    os.close(fd)
    return path


def test_stale_temporaries_of_the_writer_and_only_those_are_removed(tmp_path):
    (tmp_path / 'splits').mkdir()
    stale = sorted([_leftover(tmp_path, 'iter_4.pth'), _leftover(tmp_path, 'iter_4.pth'),
                    _leftover(tmp_path / 'splits', 'aptos2019_seed0.json')])
    others = ['iter_4.pth', '.iter_4.pth.tmp', 'notes.tmp', 'iter_4.pth.abcd1234.tmp',
              '.iter_4.pth.abcd123.tmp', '.iter_4.pth.abcd1234.tmp.bak']
    for name in others:
        (tmp_path / name).write_bytes(b'x')
    assert remove_stale_temporaries(str(tmp_path)) == stale
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others + ['splits'])
    assert list((tmp_path / 'splits').iterdir()) == []
    assert remove_stale_temporaries(str(tmp_path / 'missing')) == []
