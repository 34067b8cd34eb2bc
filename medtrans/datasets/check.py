"""Scan every sample of a config's datasets before a long run, and report all problems at once.

:func:`check_dataset` builds the train/val/test datasets of a config, decodes every image and
mask with the loading steps of the dataset's own pipeline (no augmentation), and collects each
problem with the file it concerns instead of stopping at the first. Across splits it looks for
identical image files, repeated sample ids and, where the data infos carry a patient or group
id, patients that cross splits. Given the run's work dir, it also checks the divided splits
against their records there (or writes them), as training does. ``tools/check_dataset.py`` is
its command line.
"""
import copy
import hashlib
import os.path as osp
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import cv2
import numpy as np
from mmengine.config import Config
from mmengine.registry import DefaultScope

from medtrans.registry import DATASETS, TRANSFORMS
from medtrans.utils.progress import track

from .preresize import reads_preresized
from .splits import GROUP_KEYS, group_key, record_splits
from .utils import collect_problems

__all__ = ['check_dataset', 'loading_steps', 'leaf_dataset_cfgs', 'DatasetCheckReport',
           'SplitCheck', 'Problem']


@dataclass
class Problem:
    """One thing wrong with the data.

    Args:
        file (str): The file concerned, or '' when the problem is not about one file (e.g. a
            dataset that could not be built).
        message (str): What is wrong and what was expected.
    """

    file: str
    message: str

    def __str__(self) -> str:
        return f'{self.file}: {self.message}' if self.file else self.message


@dataclass
class SplitCheck:
    """What :func:`check_dataset` found in one split.

    Args:
        name (str): The split, as in ``<name>_dataloader``.
        description (str): The dataset(s) of the split. Defaults to ''.
        num_samples (int): Samples in the split's dataset(s). Defaults to 0.
        num_checked (int): Samples decoded and checked. Defaults to 0.
        problems (list[Problem]): Problems of the split's files and datasets. Defaults to [].
        note (str): Why the split was not scanned ('' when it was). Defaults to ''.
        shared (dict[str, int]): Problems of tables this split reads that an earlier split
            reads too, listed there: split name -> count. Defaults to {}.
    """

    name: str
    description: str = ''
    num_samples: int = 0
    num_checked: int = 0
    problems: List[Problem] = field(default_factory=list)
    note: str = ''
    shared: Dict[str, int] = field(default_factory=dict)


@dataclass
class DatasetCheckReport:
    """The result of :func:`check_dataset`.

    Args:
        splits (list[SplitCheck]): One entry per split asked for, in that order.
        cross_split (list[Problem]): Duplicates and leakage between splits.
        notes (list[str]): Checks that did not apply, with the reason.
        records (list[str]): The split records written or matched in the work dir, as
            ``'wrote <path>'`` or ``'matched <path>'``. Defaults to [].
    """

    splits: List[SplitCheck]
    cross_split: List[Problem] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    records: List[str] = field(default_factory=list)

    @property
    def num_problems(self) -> int:
        """Number of problems in all splits and across them."""
        return sum(len(s.problems) for s in self.splits) + len(self.cross_split)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return self.num_problems == 0

    def format(self) -> str:
        """The report as text: per split, then across splits, then a summary line."""
        lines = []
        for split in self.splits:
            head = f'[{split.name}] {split.description}'.rstrip()
            if split.note:
                lines.append(f'{head}: {split.note}')
            else:
                found = [f'{len(split.problems)} problem(s)'] if split.problems else []
                found += [f'{count} problem(s) of its tables or folders listed under [{name}]'
                          for name, count in split.shared.items()]
                lines.append(f'{head}: {split.num_checked}/{split.num_samples} samples checked, '
                             + (', '.join(found) or 'no problems'))
            lines.extend(f'  - {problem}' for problem in split.problems)
        lines.append('[across splits] ' + (f'{len(self.cross_split)} problem(s)'
                                           if self.cross_split else 'no problems'))
        lines.extend(f'  - {problem}' for problem in self.cross_split)
        lines.extend(f'  note: {note}' for note in self.notes)
        lines.extend(f'Split record: {record}' for record in self.records)
        checked = sum(s.num_checked for s in self.splits)
        verdict = 'OK' if self.ok else 'FAILED'
        lines.append(f'Summary: {len(self.splits)} split(s), {checked} samples checked, '
                     f'{self.num_problems} problem(s): {verdict}')
        return '\n'.join(lines)


def loading_steps(pipeline: Iterable) -> list:
    """The loading transforms of a pipeline: the steps whose type name starts with ``Load``.

    Augmentation, resizing and packing are left out, so that images and masks are checked as
    stored. The order is kept (in a test pipeline ``LoadBinaryMask`` may follow ``Resize``; it
    still follows ``LoadImageStrict``).

    Args:
        pipeline (Iterable[dict | Callable]): Transform configs or transforms.

    Returns:
        list: The loading steps, as given.
    """
    steps = []
    for step in pipeline:
        kind = step.get('type', '') if isinstance(step, dict) else type(step)
        name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
        # A scope prefix ('mmseg.LoadAnnotations') does not change what the step is.
        if name.rsplit('.', 1)[-1].startswith('Load'):
            steps.append(step)
    return steps


def _path_values(info: dict) -> List[str]:
    """The file paths of a data info (its ``*_path`` entries), image first."""
    keys = sorted((k for k, v in info.items() if k.endswith('_path') and isinstance(v, str)),
                  key=lambda k: (k != 'img_path', k))
    return [info[k] for k in keys]


def _file_named_in(message: str, info: dict) -> str:
    """The file of a sample that an error message names first, else the sample's first file."""
    paths = _path_values(info)
    named = [p for p in paths if p in message]
    if named:
        return min(named, key=message.find)
    return paths[0] if paths else ''


def _digest(path: str) -> Optional[str]:
    """Content hash of a file, None if it cannot be read (the loader reports why)."""
    hasher = hashlib.blake2b(digest_size=16)
    try:
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                hasher.update(chunk)
    except OSError:
        return None
    return hasher.hexdigest()


def _label_values(seg: np.ndarray) -> List[int]:
    if seg.dtype == np.uint8:
        # One pass in C; np.unique would sort every pixel of a large mask.
        return np.flatnonzero(cv2.calcHist([seg], [0], None, [256], [0, 256])[:, 0]).tolist()
    return np.unique(seg).tolist()


class _SampleChecker:
    """Loads one sample with the loading steps and checks what they give.

    Args:
        steps (list): Loading transform configs (or transforms).
        scope (str): Default scope to build them in.
        num_classes (int, optional): Number of classes; mask values are checked against it.
        ignore_index (int, optional): Mask value allowed besides the classes.
    """

    def __init__(self, steps: list, scope: str, num_classes: Optional[int],
                 ignore_index: Optional[int]) -> None:
        with DefaultScope.overwrite_default_scope(scope):
            self.transforms = [TRANSFORMS.build(s) if isinstance(s, dict) else s for s in steps]
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def _check_targets(self, results: dict) -> List[Tuple[str, str]]:
        seg = results.get('gt_seg_map')
        if seg is None:
            return []
        mask_path = results.get('seg_map_path', '')
        found = []
        img = results.get('img')
        if img is not None and seg.shape[:2] != img.shape[:2]:
            found.append((mask_path, f'mask is {seg.shape[0]}x{seg.shape[1]} (HxW) but its image '
                                     f'is {img.shape[0]}x{img.shape[1]}; expected the same size'))
        if self.num_classes is not None:
            allowed = set(range(self.num_classes)) | {self.ignore_index}
            bad = [v for v in _label_values(seg) if v not in allowed]
            if bad:
                found.append((mask_path, f'mask holds label values {bad[:8]}; expected class '
                                         f'indices 0..{self.num_classes - 1} or ignore_index '
                                         f'{self.ignore_index}'))
        return found

    def __call__(self, info: dict) -> Tuple[Optional[str], List[Tuple[str, str]]]:
        """Check one sample.

        Args:
            info (dict): The sample's data info.

        Returns:
            tuple: The content hash of its image file (None if unreadable) and its problems as
            (file, message) pairs.
        """
        digest = _digest(info['img_path']) if 'img_path' in info else None
        results = copy.deepcopy(info)
        try:
            for transform in self.transforms:
                results = transform(results)
                if results is None:
                    return digest, [(_file_named_in('', info),
                                     f'{type(transform).__name__} dropped the sample (returned '
                                     'None); expected every sample to load')]
        except Exception as err:  # every failure is reported, whatever its type
            message = str(err)
            return digest, [(_file_named_in(message, info), f'{type(err).__name__}: {message}')]
        return digest, self._check_targets(results)


def leaf_dataset_cfgs(dataset_cfg: dict) -> List[dict]:
    """The datasets holding a pipeline inside dataset wrappers (Concat, Repeat, ...)."""
    if 'datasets' in dataset_cfg:
        return [leaf for sub in dataset_cfg['datasets'] for leaf in leaf_dataset_cfgs(sub)]
    if 'dataset' in dataset_cfg and 'pipeline' not in dataset_cfg:
        return leaf_dataset_cfgs(dataset_cfg['dataset'])
    return [dataset_cfg]


@dataclass
class _Part:
    """One built dataset of a split, ready to scan.

    ``partial``: bad table rows were left out of it (their problems are reported).
    """

    dataset: object
    checker: _SampleChecker
    files_key: str
    partial: bool = False


def _describe(leaf: dict) -> str:
    kind = leaf.get('type', '?')
    kind = kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))
    args = ', '.join(f'{k}={leaf[k]!r}' for k in ('data_root', 'split', 'ann_file') if k in leaf)
    return f'{kind}({args})'


def _add_table_problems(split: SplitCheck, found: List[Exception],
                        listed: Dict[str, str]) -> None:
    """Add the problems of bad table rows to a split, each said once in the report.

    The splits of one table read it each: a row's problem goes to the first split that met
    it, and later ones count it in :attr:`SplitCheck.shared`.
    """
    for problem in found:
        message = str(problem)
        if message in listed:
            split.shared[listed[message]] = split.shared.get(listed[message], 0) + 1
        else:
            listed[message] = split.name
            split.problems.append(Problem('', message))


def _build_parts(split: SplitCheck, dataset_cfg: dict, scope: str,
                 listed: Dict[str, str]) -> List[_Part]:
    """Build a split's datasets; a dataset that cannot be built becomes a problem of the split.

    The datasets are built within :func:`~medtrans.datasets.utils.collect_problems`: a bad
    table row is a problem of the split (said once across splits), left out of the dataset,
    so that the other rows are checked all the same.
    """
    parts = []
    leaves = leaf_dataset_cfgs(dataset_cfg)
    split.description = ' + '.join(_describe(leaf) for leaf in leaves)
    for leaf in leaves:
        steps = loading_steps(leaf.get('pipeline', []))
        built = copy.deepcopy(leaf)
        # Only the files are checked: augmentations are not built, let alone run.
        built['pipeline'] = []
        if not steps:
            split.problems.append(Problem('', f'{_describe(leaf)}: the pipeline has no loading '
                                              'transform (type Load*); expected one to decode '
                                              'the files with'))
            continue
        failed = None
        with collect_problems() as found:
            try:
                with DefaultScope.overwrite_default_scope(scope):
                    if reads_preresized(built['type']):
                        built['preresized'] = False  # the originals are what is checked
                    dataset = DATASETS.build(built)
                dataset.full_init()
                classes = dataset.metainfo.get('classes')
                checker = _SampleChecker(steps, scope, len(classes) if classes else None,
                                         getattr(dataset, 'ignore_index', None))
            except Exception as err:  # reported in the split, whatever its type
                failed = err
        _add_table_problems(split, found, listed)
        if failed is not None:
            split.problems.append(Problem('', f'{_describe(leaf)} could not be built: '
                                              f'{type(failed).__name__}: {failed}'))
            continue
        hasher = hashlib.blake2b(repr(steps).encode(), digest_size=16)
        for idx in range(len(dataset)):
            hasher.update(repr(_path_values(dataset.get_data_info(idx))).encode())
        split.num_samples += len(dataset)
        parts.append(_Part(dataset, checker, hasher.hexdigest(), partial=bool(found)))
    return parts


def _results(part: _Part,
             num_workers: int) -> Iterator[Tuple[dict, Tuple[Optional[str], list]]]:
    """(data info, check result) of every sample of a part, in order."""
    infos = (part.dataset.get_data_info(i) for i in range(len(part.dataset)))
    if num_workers <= 0:
        for info in infos:
            yield info, part.checker(info)
        return
    # Threads suffice: reading, decoding (OpenCV) and hashing release the GIL. A sliding window
    # of pending samples keeps memory bounded: results hold hashes and messages, not pixels.
    with ThreadPoolExecutor(num_workers) as pool:
        pending: Deque[Tuple[dict, Future]] = deque()
        for info in infos:
            pending.append((info, pool.submit(part.checker, info)))
            if len(pending) >= 4 * num_workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()


def _sample_id(info: dict) -> Optional[str]:
    if 'sample_id' in info:
        return str(info['sample_id'])
    path = info.get('img_path')
    return osp.splitext(osp.basename(path))[0] if path else None


class _CrossSplitIndex:
    """What the splits hold, to find duplicates and leakage between them."""

    def __init__(self) -> None:
        self.by_digest: Dict[str, List[Tuple[str, str]]] = {}
        self.by_id: Dict[str, List[Tuple[str, str]]] = {}
        self.by_group: Dict[str, List[Tuple[str, str]]] = {}
        self.group_key_seen = False

    def add(self, split: str, info: dict, digest: Optional[str]) -> None:
        path = info.get('img_path', '')
        if digest is not None:
            self.by_digest.setdefault(digest, []).append((split, path))
        sample_id = _sample_id(info)
        if sample_id is not None:
            self.by_id.setdefault(sample_id, []).append((split, path))
        key = group_key(info)
        if key is not None:
            self.group_key_seen = True
            self.by_group.setdefault(str(info[key]), []).append((split, path))

    @staticmethod
    def _crossing(index: Dict[str, List[Tuple[str, str]]]):
        for key, entries in index.items():
            if len({split for split, _ in entries}) > 1:
                yield key, entries

    @staticmethod
    def _listing(entries: List[Tuple[str, str]]) -> str:
        return '; '.join(f'{split}: {path}' for split, path in entries)

    def problems(self) -> Tuple[List[Problem], List[str]]:
        problems, notes, reported = [], [], set()
        for _, entries in self._crossing(self.by_digest):
            reported.add(frozenset(path for _, path in entries))
            problems.append(Problem(entries[0][1], 'identical image content in more than one '
                                                   f'split: {self._listing(entries)}'))
        for sample_id, entries in self._crossing(self.by_id):
            # The same files were already reported as identical content.
            if frozenset(path for _, path in entries) not in reported:
                problems.append(Problem(entries[0][1], f'sample id "{sample_id}" in more than '
                                                       f'one split: {self._listing(entries)}'))
        if not self.group_key_seen:
            notes.append('patient leakage check not applicable: no data info carries '
                         f'{" or ".join(repr(k) for k in GROUP_KEYS)}')
        for group, entries in self._crossing(self.by_group):
            splits = sorted({split for split, _ in entries})
            problems.append(Problem(entries[0][1], f'patient/group "{group}" is in splits '
                                                   f'{splits}: {self._listing(entries)}'))
        return problems, notes


def _check_records(split: SplitCheck, parts: List[_Part], work_dir: str, misfits: Set[str],
                   log: Callable[[str], None], notes: List[str], records: List[str]) -> None:
    """Check (or write) the split records of a split's datasets; a misfit is a problem."""
    for part in parts:
        if part.partial:
            # Divided without its bad rows, the split is not the one training would make.
            note = (f'split record of {type(part.dataset).__name__} not checked nor written: '
                    'its bad rows and files are left out of this check')
            if note not in notes:
                notes.append(note)
            continue
        try:
            done = record_splits(part.dataset, work_dir)
        except ValueError as err:
            # The splits of one division share a record: what is wrong with it is said once.
            if str(err) not in misfits:
                misfits.add(str(err))
                split.problems.append(Problem('', str(err)))
            continue
        for path, written in done:
            log(f'[{split.name}] ' + ('wrote the split record ' if written else
                                      'the split matches its record ') + path)
            record = ('wrote ' if written else 'matched ') + path
            if record not in records and ('wrote ' + path) not in records:
                records.append(record)


def check_dataset(cfg: Config,
                  splits: Sequence[str] = ('train', 'val', 'test'),
                  num_workers: int = 0,
                  progress_every: int = 500,
                  log: Optional[Callable[[str], None]] = None,
                  work_dir: Optional[str] = None) -> DatasetCheckReport:
    """Check every sample of a config's datasets and collect all problems.

    For each split ``s``, the dataset of ``cfg.<s>_dataloader`` is built (each dataset inside
    wrappers such as ``ConcatDataset``) and every sample is loaded with the loading steps of its
    pipeline (:func:`loading_steps`, e.g. ``LoadImageStrict`` and ``LoadBinaryMask``), which
    check the files; the resulting mask must also have its image's size and label values in
    ``0..num_classes-1`` or ``ignore_index``. The originals are checked, not pre-resized copies
    (datasets that read them are built with ``preresized=False``). A dataset that cannot be
    built (missing data root, image without mask, ...) is a problem of its split. The datasets
    are built within :func:`~medtrans.datasets.utils.collect_problems`: each bad row of a label
    table is one problem, of the first split that reads the table (later splits count it in
    :attr:`SplitCheck.shared`), and is left out, so that the other rows are still checked; the
    split records of such a dataset are neither checked nor written (a note says so). A split
    whose samples and loading steps are those of an earlier split (e.g. a config that tests on
    its val set) is not scanned again nor compared with that split.

    Across splits: identical image files (by content hash), the same sample id (``sample_id``
    in the data info, else the image file name without extension), and patients or groups
    (:data:`GROUP_KEYS` in the data infos) in more than one split. Without group keys the
    leakage check does not apply; the report says so.

    With ``work_dir``, each divided split is kept in, or checked against, its record in
    ``<work_dir>/splits/`` by :func:`~medtrans.datasets.splits.record_splits`, as
    :class:`~medtrans.engine.hooks.SplitRecordHook` does when training; a record that does not
    hold the split is a problem of the first split that uses it.

    Decoded images are not kept: memory stays bounded by the data infos of the splits.
    The registries must be filled first (:func:`medtrans.setup_env.register_all_modules`, which
    ``tools/check_dataset.py`` calls), so that plugin datasets are found too.

    Args:
        cfg (Config): The config.
        splits (Sequence[str]): Splits to check. Defaults to ('train', 'val', 'test').
        num_workers (int): Threads decoding the files; 0 decodes in the calling thread.
            Defaults to 0.
        progress_every (int): Without a terminal, log a progress line every this many
            samples. Defaults to 500.
        log (Callable[[str], None], optional): Receives the progress lines (on a terminal, a
            progress bar is drawn instead: :func:`medtrans.utils.progress.track`). Defaults to
            None (silent).
        work_dir (str, optional): The run's work dir, whose split records are checked (and
            written where missing). Defaults to None (no record is read or written).

    Returns:
        DatasetCheckReport: Every problem found, per split and across splits.
    """
    scope = cfg.get('default_scope') or 'medtrans'
    progress_log = log
    log = log or (lambda line: None)
    report = DatasetCheckReport(splits=[SplitCheck(name) for name in splits])
    parts_of: Dict[str, List[_Part]] = {}
    misfits: Set[str] = set()
    listed: Dict[str, str] = {}
    record_notes: List[str] = []
    for split in report.splits:
        loader_cfg = cfg.get(f'{split.name}_dataloader')
        if not loader_cfg or not loader_cfg.get('dataset'):
            split.note = f'not checked: the config has no {split.name}_dataloader.dataset'
            continue
        parts_of[split.name] = _build_parts(split, loader_cfg['dataset'], scope, listed)
        if work_dir is not None:
            _check_records(split, parts_of[split.name], work_dir, misfits, log, record_notes,
                           report.records)

    index = _CrossSplitIndex()
    scanned: Dict[Tuple[str, ...], str] = {}
    for split in report.splits:
        parts = parts_of.get(split.name)
        if not parts:
            continue
        files_key = tuple(part.files_key for part in parts)
        if files_key in scanned and not split.problems:
            split.note = (f'same samples and loading steps as [{scanned[files_key]}]: '
                          f'{split.num_samples} samples, checked there')
            continue
        scanned.setdefault(files_key, split.name)
        results = (result for part in parts for result in _results(part, num_workers))
        for info, (digest, problems) in track(
                results, split.num_samples, f'[{split.name}] checking', log=progress_log,
                every=progress_every,
                line=lambda done, split=split: (
                    f'[{split.name}] {done}/{split.num_samples} samples checked, '
                    f'{len(split.problems)} problem(s) so far')):
            split.num_checked += 1
            split.problems.extend(Problem(file, message) for file, message in problems)
            index.add(split.name, info, digest)
        log(f'[{split.name}] done: {split.num_checked} samples checked, '
            f'{len(split.problems)} problem(s)')
    report.cross_split, report.notes = index.problems()
    report.notes.extend(record_notes)
    return report
