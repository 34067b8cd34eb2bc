"""SHA-256 manifests of weight files, in the format of coreutils' ``sha256sum``.

A folder of weight files may hold a ``SHA256SUMS`` file with one line per file,
``<64 hex digits><two spaces><file name>``, so that ``sha256sum -c SHA256SUMS`` checks the folder
by hand and :func:`verify_weight_file` checks a file before it is loaded.
"""
import hashlib
import os.path as osp
import re
from typing import Dict, Optional

from mmengine.logging import print_log

from medtrans.fileio import atomic_write_text

__all__ = ['MANIFEST_NAME', 'sha256_file', 'read_manifest', 'update_manifest',
           'verify_weight_file']

MANIFEST_NAME = 'SHA256SUMS'
# sha256sum writes ' ' (text mode) or '*' (binary mode) before the name; both mean the same here.
_LINE = re.compile(r'^([0-9a-fA-F]{64}) [ *](.+)$')
_CHUNK = 1 << 24


def sha256_file(path: str) -> str:
    """Return the SHA-256 hex digest of a file, read in chunks (weight files can be large)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: str) -> Dict[str, str]:
    """Read the ``SHA256SUMS`` of a folder.

    Args:
        folder (str): Folder holding the manifest.

    Returns:
        dict[str, str]: File name -> lower-case hex digest; empty if there is no manifest.

    Raises:
        ValueError: A line is not ``<sha256>  <name>``, or a name is listed twice.
    """
    path = osp.join(folder, MANIFEST_NAME)
    if not osp.isfile(path):
        return {}
    entries: Dict[str, str] = {}
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip('\n')
            if not line.strip():
                continue
            match = _LINE.match(line)
            if match is None:
                raise ValueError(f'{path}, line {number}: expected "<64 hex digits>  <file name>" '
                                 f'(the format of sha256sum), got {line!r}')
            digest, name = match.group(1).lower(), match.group(2)
            if name in entries:
                raise ValueError(f'{path}, line {number}: {name} is listed twice')
            entries[name] = digest
    return entries


def update_manifest(folder: str, digests: Dict[str, str]) -> str:
    """Add or replace entries of a folder's ``SHA256SUMS``, keeping the other entries.

    The manifest is rewritten atomically, sorted by file name.

    Args:
        folder (str): Folder of the files (names are relative to it).
        digests (dict[str, str]): File name -> hex digest.

    Returns:
        str: Path of the manifest.
    """
    entries = read_manifest(folder)
    entries.update({name: digest.lower() for name, digest in digests.items()})
    path = osp.join(folder, MANIFEST_NAME)
    atomic_write_text(path, ''.join(f'{entries[name]}  {name}\n' for name in sorted(entries)))
    return path


def verify_weight_file(path: str) -> Optional[str]:
    """Check a file against the ``SHA256SUMS`` beside it, if that manifest lists it.

    Args:
        path (str): The weight file.

    Returns:
        str | None: The verified digest, or None when no manifest beside the file lists it.

    Raises:
        ValueError: The file's digest differs from the manifest's (a truncated copy, say).
    """
    folder, name = osp.split(osp.abspath(path))
    expected = read_manifest(folder).get(name)
    if expected is None:
        return None
    actual = sha256_file(path)
    if actual != expected:
        raise ValueError(
            f'{path}: SHA-256 {actual}, but {osp.join(folder, MANIFEST_NAME)} lists {expected}; '
            'the file is damaged or was replaced. Fetch it again (see tools/misc/'
            'download_timm_weights.py) or remove its line from the manifest if the change is '
            'intended.')
    print_log(f'{path}: SHA-256 matches {MANIFEST_NAME}', logger='current')
    return actual
