"""Atomic writes: a kill during a write leaves the previous file intact and loadable."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import torch
from mmengine.fileio import get_file_backend

from medtrans.fileio import AtomicLocalBackend, atomic_write_bytes


def test_atomic_write_replaces_content(tmp_path):
    path = tmp_path / 'sub' / 'f.bin'
    atomic_write_bytes(path, b'one')
    atomic_write_bytes(path, b'two')
    assert path.read_bytes() == b'two'
    assert os.listdir(path.parent) == ['f.bin']


def test_backend_is_selectable_by_config(tmp_path):
    backend = get_file_backend(str(tmp_path), backend_args=dict(backend='medtrans_atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put_text('iter_3.pth', str(tmp_path / 'last_checkpoint'))
    assert (tmp_path / 'last_checkpoint').read_text() == 'iter_3.pth'


def test_kill_during_checkpoint_write_keeps_previous(tmp_path):
    path = tmp_path / 'latest.pth'
    good = {'w': torch.arange(10.)}
    atomic_write_bytes(path, _serialise(good))
    # A child process writes a large checkpoint over it again and again; kill it mid-write.
    code = textwrap.dedent(f"""
        import io, torch
        from medtrans.fileio import atomic_write_bytes
        big = {{'w': torch.randn(8_000_000)}}
        buf = io.BytesIO(); torch.save(big, buf); data = buf.getvalue()
        print('ready', flush=True)
        while True:
            atomic_write_bytes({str(path)!r}, data)
    """)
    proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'ready'
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    loaded = torch.load(path, weights_only=True)
    assert set(loaded) == {'w'}
    assert loaded['w'].numel() in (10, 8_000_000)


def _serialise(obj) -> bytes:
    import io
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()
