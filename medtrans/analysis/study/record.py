"""What a study leaves in its work dirs: each run's record, and whether a job is done."""
import functools
import json
import os
import os.path as osp
import subprocess
from datetime import datetime
from typing import Dict, Optional

from medtrans.fileio import atomic_write_text

__all__ = ['RUN_RECORD', 'PRETRAINING_RECORD', 'DISTRIBUTIONS', 'versions', 'git_commit',
           'has_checkpoint', 'write_record', 'read_record', 'test_metrics_path']

#: The record each run's work dir holds (the summaries read it).
RUN_RECORD = 'study_run.json'
#: The record of a pretraining's work dir (not a table cell: the summaries skip it).
PRETRAINING_RECORD = 'study_pretraining.json'
#: The distributions whose versions a record holds: the import name -> the distribution names
#: it comes from (mmcv as the full package or mmcv-lite).
DISTRIBUTIONS = {
    'medtrans': ('medtrans', ),
    'torch': ('torch', ),
    'mmengine': ('mmengine', ),
    'mmcv': ('mmcv', 'mmcv-lite'),
    'mmseg': ('mmsegmentation', ),
    'mmpretrain': ('mmpretrain', ),
    'timm': ('timm', ),
}


@functools.cache
def git_commit() -> Optional[str]:
    """The commit of the medtrans checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                             cwd=osp.dirname(osp.abspath(__file__)), timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


@functools.cache
def versions() -> Dict[str, Optional[str]]:
    """The installed versions by distribution name (``mmsegmentation``, ``mmcv-lite``...);
    a package with none of its distributions installed is recorded under its first with
    None."""
    from importlib.metadata import PackageNotFoundError, version
    found: Dict[str, Optional[str]] = {}
    for names in DISTRIBUTIONS.values():
        for name in names:
            try:
                found[name] = version(name)
                break
            except PackageNotFoundError:
                continue
        else:
            found[names[0]] = None
    return found


def has_checkpoint(work_dir: str) -> bool:
    return osp.isdir(work_dir) and any(name.endswith('.pth') for name in os.listdir(work_dir))


def test_metrics_path(work_dir: str) -> str:
    return osp.join(work_dir, 'metrics', 'test_latest.json')


def read_record(path: str) -> Optional[dict]:
    """A record, or None where there is none (or it cannot be read)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_record(path: str, fields: dict) -> dict:
    """Write a record (the fields, the git commit, the versions and the start time)."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    record = dict(fields, git_commit=git_commit(), versions=versions(),
                  started=datetime.now().isoformat(timespec='seconds'))
    atomic_write_text(path, json.dumps(record, indent=1) + '\n')
    return record
