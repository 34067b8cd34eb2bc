"""Crash-safe writes: a file is either its old content or its complete new content."""
import os
import os.path as osp
import re
import stat
import tempfile
from pathlib import Path
from typing import List, Union

from mmengine.fileio import LocalBackend, register_backend

__all__ = [
    'atomic_write_bytes', 'atomic_write_text', 'AtomicLocalBackend', 'ATOMIC_BACKEND',
    'register_atomic_backend', 'remove_stale_temporaries'
]

#: The name configs give MMEngine's file backends (``backend_args=dict(backend=...)``).
ATOMIC_BACKEND = 'medtrans_atomic_local'

#: The names of :func:`atomic_write_bytes`' temporary files: ``.<name>.<mkstemp's 8 random
#: characters>.tmp``.
_TEMPORARY = re.compile(r'\..+\.[a-z0-9_]{8}\.tmp')

# The process's umask, read once at import (reading it means setting it, which is not
# thread-safe): new files get the permissions open() would give them.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _set_mode(fd: int, path: str) -> None:
    """Give the temporary file the mode ``path`` has, or else the one ``open()`` would give:
    mkstemp's 0600 would hide the file from other users."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK
    try:
        os.fchmod(fd, mode)
    except OSError:  # filesystems that refuse chmod (some network mounts) keep their own modes
        pass


def atomic_write_bytes(path: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically.

    The bytes go to a temporary file in the same directory, which is flushed, fsynced and renamed
    over ``path``; the directory is fsynced so the rename itself survives a power loss. A process
    killed at any moment leaves either the previous file or the new one, never a torn file (a
    kill before the rename may leave a hidden ``.<name>.*.tmp`` file beside it). An exception
    while writing, syncing or renaming removes the temporary file and leaves ``path`` as it was.

    Args:
        path (str | Path): Destination; parent directories are created.
        data (bytes): Content.
    """
    path = osp.abspath(str(path))
    directory = osp.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=directory)
    try:
        _set_mode(fd, path)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Union[str, Path], text: str, encoding: str = 'utf-8') -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode(encoding))


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend with atomic ``put``/``put_text``.

    Select it for checkpoints with
    ``default_hooks.checkpoint.backend_args = dict(backend='medtrans_atomic_local')``; the
    checkpoint files are then never left half-written. MMEngine's ``CheckpointHook`` writes the
    ``last_checkpoint`` pointer with a plain ``open`` in the work dir, not through this backend,
    so the pointer is not atomic: a kill can leave it empty or naming the previous checkpoint
    (which is why :func:`medtrans.engine.latest_checkpoint` prefers the numbered checkpoints).
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write_text(filepath, obj, encoding)


def register_atomic_backend() -> None:
    """Register :class:`AtomicLocalBackend` in MMEngine's file backends as
    :data:`ATOMIC_BACKEND` (idempotent; called by
    :func:`medtrans.setup_env.register_all_modules`, not on import)."""
    register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


def remove_stale_temporaries(folder: str) -> List[str]:
    """Remove the temporary files that interrupted :func:`atomic_write_bytes` calls left in
    ``folder`` and below (a kill between the temporary file and its rename), and return them.

    Only the writer's own names match (``.<name>.<8 characters>.tmp``, as :func:`tempfile.mkstemp`
    makes them); other files stay. Call it where no atomic write can be under way in
    ``folder``: :class:`~medtrans.engine.MedtransRunner` does at the start of training, in the
    main process, in its work dir.

    Args:
        folder (str): The folder to clean; a missing one holds nothing.

    Returns:
        list[str]: The paths removed, sorted.
    """
    removed = []
    for root, _, names in os.walk(folder):
        for name in names:
            if _TEMPORARY.fullmatch(name):
                os.remove(osp.join(root, name))
                removed.append(osp.join(root, name))
    return sorted(removed)
