"""The shared base of the classification datasets, and strict reading of their label tables.

Interface of a dataset family (subclass :class:`BaseClsDataset`, register it in
:data:`medtrans.registry.DATASETS`):

.. code-block:: python

    @DATASETS.register_module()
    class MyDataset(BaseClsDataset):
        METAINFO = dict(classes=('a', 'b'))
        MULTI_LABEL = False                                  # True: gt_score vectors
        SPLIT_FRACTIONS = dict(train=0.8, val=0.1, test=0.1)  # {}: no divided splits
        LAYOUT = '<data_root>/labels.csv ...'                # shown in layout errors
        SYNTHETIC_LAYOUT = 'medtrans.datasets.synthetic.mine:my_layout'

        def load_samples(self) -> List[dict]:
            ...  # the publisher's labelled set (the one the divided splits share)

        def official_splits(self) -> Mapping[str, List[dict]]:   # optional
            ...  # publisher-defined splits by name, e.g. {'official_test': [...]}; a lazy
                 # Mapping is fine: the base iterates its names and looks up one split

``__init__(data_root, split='train', split_seed=0, split_file=None, pipeline=(),
test_mode=False, split_fractions=None, **kwargs)``; ``kwargs`` go to mmpretrain's
``BaseDataset`` (``metainfo``, ``indices``, ``serialize_data``, ``lazy_init``, ``ann_file``...).
A subclass sets its own attributes before calling ``super().__init__``, which loads the data.

A sample is a dict with:

* ``sample_id`` (str, unique in the set);
* where its pixels are: ``img_path`` for :class:`~medtrans.datasets.transforms.LoadImageStrict`,
  or another key that the family's loading transform reads;
* ``gt_label`` (int class index) when ``MULTI_LABEL`` is False, or ``gt_score``
  (``np.float32`` vector, one entry per class: 1 positive, 0 negative, -1 ignored) when True;
* optionally ``patient_id`` or ``group`` (:data:`~medtrans.datasets.check.GROUP_KEYS`): then every
  sample must have one, the divided splits keep each group in one split, and ``check_dataset``
  reports a group in two splits.

``split`` selects the samples:

* a name in ``SPLIT_FRACTIONS`` (or ``split_fractions``): ``load_samples()`` divided by
  :func:`~medtrans.datasets.splits.split_ids` (seeded; stratified by ``gt_label`` when
  single-label; grouped when samples carry group ids), recorded in ``split_file``;
* ``'all'`` (when there are divided splits): every sample of ``load_samples()``;
* any other name: ``official_splits()[split]``.

The samples are checked (ids, label types and ranges, group ids), sorted by ``sample_id``, and
the split's label counts are logged. Helpers, so that every family reports bad rows and missing
files the same way (naming the file, the line and what was expected):
:func:`read_csv_table` (strict CSV label tables), :func:`image_paths` (one image per row in one
folder, checked both ways) and :func:`find_missing` (many files, one listing per folder).
"""
import csv
import io
import os
import os.path as osp
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np
from mmengine.logging import MMLogger
from mmpretrain.datasets import BaseDataset

from medtrans.registry import TRANSFORMS

from .check import GROUP_KEYS
from .preresize import use_preresized
from .splits import check_split_file_path, load_or_create_split, split_ids

__all__ = ['BaseClsDataset', 'CsvTable', 'read_csv_table', 'find_missing', 'image_paths',
           'summarize_labels', 'ALL_SPLIT']

#: The split name that selects every sample of :meth:`BaseClsDataset.load_samples`.
ALL_SPLIT = 'all'


@dataclass
class CsvTable:
    """A CSV label table whose header has been checked; rows are parsed on iteration.

    Args:
        path (str): The file.
        header (list[str]): Its column names.
        text (str): Its decoded content.
        what (str): What the table is, for messages (e.g. ``'APTOS 2019 label table'``).
    """

    path: str
    header: List[str]
    text: str
    what: str

    def column(self, name: str) -> int:
        """Index of a column named in the header."""
        return self.header.index(name)

    def error(self, line: int, message: str) -> ValueError:
        """An error about one line of the table, naming the file and the line."""
        return ValueError(f'{self.what} "{self.path}" line {line}: {message}.')

    def rows(self) -> Iterator[Tuple[int, List[str]]]:
        """The data rows as (line number, cells), blank lines skipped.

        Raises:
            ValueError: A row with another number of cells than the header, text the CSV
                parser refuses, or a table without data rows.
        """
        reader = csv.reader(io.StringIO(self.text, newline=''), strict=True)
        found = 0
        try:
            next(reader)
            for row in reader:
                if not row:
                    continue
                if len(row) != len(self.header):
                    raise self.error(reader.line_num,
                                     f'has {len(row)} cells {row[:12]}; expected '
                                     f'{len(self.header)}, one per column of {self.header}')
                found += 1
                yield reader.line_num, row
        except csv.Error as err:
            raise self.error(reader.line_num, f'is not valid CSV ({err})') from err
        if not found:
            raise ValueError(f'{self.what} "{self.path}" has a header but no rows; expected one '
                             'row per sample.')


def read_csv_table(path: str, required: Sequence[str], what: str = 'label table',
                   layout: str = '', other_columns: bool = True) -> CsvTable:
    """Open a CSV table and check its header.

    The file is read as UTF-8 (a byte order mark is allowed), with any line endings (LF, CRLF).
    Columns are found by name, so their order does not matter; every name in ``required`` must
    be in the header exactly once.

    Args:
        path (str): The file.
        required (Sequence[str]): Column names that must be present.
        what (str): What the table is, for messages. Defaults to ``'label table'``.
        layout (str): The expected layout, shown when the file is missing. Defaults to ''.
        other_columns (bool): Whether columns besides ``required`` are allowed (and left to the
            caller). Defaults to True.

    Returns:
        CsvTable: The table; iterate :meth:`CsvTable.rows` for its rows.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: Not a file, not UTF-8, empty, or a header without the required columns,
            with a repeated column name, or (``other_columns=False``) with other columns.
    """
    if not osp.exists(path):
        raise FileNotFoundError(f'{what} "{path}" not found' +
                                (f'; expected the layout:\n{layout}' if layout else '.'))
    if not osp.isfile(path):
        raise ValueError(f'{what} "{path}" is not a file; expected a CSV file.')
    with open(path, 'rb') as f:
        content = f.read()
    try:
        text = content.decode('utf-8-sig')
    except UnicodeDecodeError as err:
        line = content[:err.start].count(b'\n') + 1
        raise ValueError(f'{what} "{path}" line {line}: not UTF-8 text ({err.reason} at byte '
                         f'{err.start}); expected a UTF-8 CSV file.') from err
    try:
        header = next(csv.reader(io.StringIO(text, newline=''), strict=True), None)
    except csv.Error as err:
        raise ValueError(f'{what} "{path}" line 1: is not valid CSV ({err}).') from err
    if not header:
        raise ValueError(f'{what} "{path}" is empty; expected a header with the columns '
                         f'{list(required)} and one row per sample.')
    repeated = sorted(name for name, n in Counter(header).items() if n > 1)
    if repeated:
        raise ValueError(f'{what} "{path}" line 1: the header repeats the columns {repeated}; '
                         'expected each column once.')
    missing = [name for name in required if name not in header]
    if missing:
        raise ValueError(f'{what} "{path}" line 1: the header {header[:12]} lacks the columns '
                         f'{missing}; expected the columns {list(required)}.')
    unknown = [name for name in header if name not in required]
    if unknown and not other_columns:
        raise ValueError(f'{what} "{path}" line 1: the header has the unknown columns '
                         f'{unknown[:12]}; expected only the columns {list(required)}.')
    return CsvTable(path=path, header=header, text=text, what=what)


def find_missing(paths: Sequence[str]) -> List[int]:
    """Indices of the paths that are not existing regular files (symlinks followed).

    Each folder is listed once, so that checking many files in few folders costs a directory
    read each rather than a ``stat`` per file.

    Args:
        paths (Sequence[str]): File paths.

    Returns:
        list[int]: Indices into ``paths`` of the missing ones, in order.
    """
    listed: Dict[str, Set[str]] = {}
    missing = []
    for i, path in enumerate(paths):
        folder, name = osp.split(path)
        if folder not in listed:
            try:
                with os.scandir(folder or '.') as entries:
                    listed[folder] = {e.name for e in entries if e.is_file()}
            except (FileNotFoundError, NotADirectoryError):
                listed[folder] = set()
        if name not in listed[folder]:
            missing.append(i)
    return missing


def image_paths(table: CsvTable, rows: Sequence[Tuple[int, str]], folder: str,
                suffix: str) -> List[str]:
    """The image file of each row of a label table, as ``<folder>/<id><suffix>``, checked.

    Every id must be a plain file name stem (not empty, no surrounding spaces, no path
    separator) and appear once; every image must exist; and every ``*<suffix>`` file in
    ``folder`` must have a row (hidden files, whose names start with ``.``, are not images).

    Args:
        table (CsvTable): The table the rows come from, named in errors.
        rows (Sequence[tuple[int, str]]): (line, id) of each row.
        folder (str): The image folder.
        suffix (str): The file name suffix after the id, e.g. ``'.png'``.

    Returns:
        list[str]: The image paths, in the order of ``rows``.

    Raises:
        FileNotFoundError: The folder or an image is missing.
        ValueError: A malformed or repeated id, or an image without a row.
    """
    first_line: Dict[str, int] = {}
    for line, sample_id in rows:
        if (not sample_id or sample_id != sample_id.strip() or '/' in sample_id
                or '\\' in sample_id or sample_id in ('.', '..')):
            raise table.error(line, f'the image id {sample_id!r} is not a file name stem; '
                                    f'expected the name of an image <id>{suffix} in "{folder}"')
        if sample_id in first_line:
            raise table.error(line, f'repeats the image id "{sample_id}" of line '
                                    f'{first_line[sample_id]}; expected each image once')
        first_line[sample_id] = line
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder "{folder}" not found; expected the images of '
                                f'{table.what} "{table.path}" there, as <id>{suffix}.')
    paths = [osp.join(folder, sample_id + suffix) for _, sample_id in rows]
    missing = find_missing(paths)
    if missing:
        line, sample_id = rows[missing[0]]
        raise FileNotFoundError(
            f'{table.what} "{table.path}" line {line}: image "{paths[missing[0]]}" not found; '
            f'expected <id>{suffix} in "{folder}" for every row ({len(missing)} of {len(rows)} '
            f'images missing, e.g. {[osp.basename(paths[i]) for i in missing[:5]]}).')
    with os.scandir(folder) as entries:
        unlabelled = sorted(e.name for e in entries if e.name.endswith(suffix)
                            and not e.name.startswith('.') and e.is_file()
                            and e.name[:-len(suffix)] not in first_line)
    if unlabelled:
        raise ValueError(f'image "{osp.join(folder, unlabelled[0])}" has no row in {table.what} '
                         f'"{table.path}"; expected a label for every *{suffix} image there '
                         f'({len(unlabelled)} unlabelled, e.g. {unlabelled[:5]}).')
    return paths


def summarize_labels(samples: Sequence[dict], classes: Sequence[str], multi_label: bool) -> str:
    """The label counts of samples, one class per line.

    Args:
        samples (Sequence[dict]): Samples with ``gt_label`` (single-label) or ``gt_score``.
        classes (Sequence[str]): Class names.
        multi_label (bool): Whether the samples have ``gt_score`` vectors.

    Returns:
        str: ``'  <index> <name>: <count>'`` lines, or ``positive / negative / ignored`` counts
        per class for multi-label samples.
    """
    if multi_label:
        scores = (np.stack([s['gt_score'] for s in samples]) if samples
                  else np.zeros((0, len(classes)), np.float32))
        return '\n'.join(
            f'  {i} {name}: {int((scores[:, i] == 1).sum())} positive / '
            f'{int((scores[:, i] == 0).sum())} negative / {int((scores[:, i] == -1).sum())} '
            'ignored' for i, name in enumerate(classes))
    counts = Counter(s['gt_label'] for s in samples)
    return '\n'.join(f'  {i} {name}: {counts.get(i, 0)}' for i, name in enumerate(classes))


def _group_key(sample: dict) -> Optional[str]:
    """The first of :data:`GROUP_KEYS` that a sample holds, as ``check_dataset`` reads it."""
    return next((k for k in GROUP_KEYS if sample.get(k) is not None), None)


def _group_of(sample: dict):
    key = _group_key(sample)
    return None if key is None else sample[key]


def _format_fractions(fractions: Dict[str, float]) -> str:
    return '/'.join(f'{name} {frac:g}' for name, frac in fractions.items())


class BaseClsDataset(BaseDataset):
    """Base of the classification datasets: official layouts, checked samples, seeded splits.

    Subclasses read their publisher's layout in :meth:`load_samples` (and
    :meth:`official_splits` where the publisher defines splits); this class selects the split,
    checks the samples and logs the split's labels. See the module docstring for the interface.

    Args:
        data_root (str): Folder holding the official layout.
        split (str): A name in the split fractions (e.g. ``'train'``, ``'val'``, ``'test'``),
            ``'all'`` (every sample of :meth:`load_samples`), or an official split of
            :meth:`official_splits`. Defaults to ``'train'``.
        split_seed (int): Seed of the divided splits. Defaults to 0.
        split_file (str, optional): JSON record of the divided splits (see
            :func:`~medtrans.datasets.splits.load_or_create_split`): read and checked if it
            exists, else written. Never inside ``data_root``; ``'{work_dir}'`` in it is filled in
            by the training tools. Only the divided splits use it. None computes the split
            without saving it. Defaults to None.
        pipeline (Sequence[dict | Callable]): Transforms, built in the ``medtrans`` registry
            (other packages' with a scope prefix, ``'mmpretrain.PackInputs'``). Defaults to ().
        test_mode (bool): As in :class:`mmengine.dataset.BaseDataset`. Defaults to False.
        split_fractions (dict[str, float], optional): Split name -> fraction of
            :meth:`load_samples`, summing to 1, in the order splits are filled. None uses
            :attr:`SPLIT_FRACTIONS`, the study's. Defaults to None.
        preresized (bool | str): Read images from pre-resized copies where a cache has
            current ones (:mod:`medtrans.datasets.preresize`): True looks for
            ``<data_root>/.preresized``, a str names another cache folder, False reads the
            originals. Defaults to True.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset` (``metainfo``,
            ``indices``, ``serialize_data``, ``lazy_init``, ``max_refetch``, ``ann_file``...).

    Raises:
        ValueError: Bad arguments, an empty split, samples that break the interface, or a split
            file that does not fit.
        FileNotFoundError: ``data_root`` or a file of the layout is missing.
    """

    METAINFO: dict = dict()
    #: Whether samples carry ``gt_score`` vectors (multi-label) instead of a ``gt_label``.
    MULTI_LABEL: bool = False
    #: The study's divided splits: name -> fraction of :meth:`load_samples`.
    SPLIT_FRACTIONS: Dict[str, float] = dict(train=0.8, val=0.1, test=0.1)
    #: The official on-disk layout, shown when data_root or a file is missing.
    LAYOUT: str = ''
    #: Takes ``preresized`` (:func:`~medtrans.datasets.preresize.reads_preresized`).
    READS_PRERESIZED = True

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 split_seed: int = 0,
                 split_file: Optional[str] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: bool = False,
                 split_fractions: Optional[Dict[str, float]] = None,
                 preresized: Union[bool, str] = True,
                 **kwargs) -> None:
        name = type(self).__name__
        if data_root is None:
            raise ValueError(f'{name}: data_root is required (the folder holding the official '
                             'layout)' + (f':\n{self.LAYOUT}' if self.LAYOUT else '.'))
        fractions = dict(self.SPLIT_FRACTIONS if split_fractions is None else split_fractions)
        if ALL_SPLIT in fractions:
            raise ValueError(f'{name}: "{ALL_SPLIT}" names every sample and cannot be a divided '
                             f'split; got split_fractions {fractions}.')
        overrides_official = type(self).official_splits is not BaseClsDataset.official_splits
        if not (split in fractions or (split == ALL_SPLIT and fractions) or overrides_official):
            choices = list(fractions) + ([ALL_SPLIT] if fractions else [])
            raise ValueError(f'{name}: split must be one of {choices}, got {split!r}.')
        if not isinstance(split_seed, int) or isinstance(split_seed, bool):
            raise ValueError(f'{name}: split_seed must be an int, got {split_seed!r}.')
        if split_file is not None:
            # Checked before touching the disk, so that a misplaced split file fails fast.
            check_split_file_path(split_file, data_root)
        self.split = split
        self.split_seed = split_seed
        self.split_file = split_file
        self.split_fractions = fractions
        self.preresized = preresized
        transforms = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        super().__init__(
            ann_file=kwargs.pop('ann_file', ''),
            data_root=data_root,
            pipeline=transforms,
            test_mode=test_mode,
            **kwargs)

    # ---- what subclasses implement -------------------------------------------------------

    def load_samples(self) -> List[dict]:
        """Read the publisher's labelled set, which the divided splits share.

        Returns:
            list[dict]: The samples (see the module docstring).
        """
        raise NotImplementedError(f'{type(self).__name__} does not implement load_samples(); '
                                  'expected it to read the official layout.')

    def official_splits(self) -> Mapping[str, List[dict]]:
        """The publisher-defined splits.

        Only the selected split is looked up (once), and the names are taken by iterating the
        keys, so a mapping that reads a split's files on lookup reads just that split.

        Returns:
            Mapping[str, list[dict]]: Split name -> samples. The base class has none.
        """
        return {}

    # ---- the rest is shared --------------------------------------------------------------

    def _check_samples(self, samples: List[dict], source: str) -> List[dict]:
        """Check the samples against the interface; return them sorted by ``sample_id``."""
        where = f'{type(self).__name__}.{source}()'
        if not isinstance(samples, list):
            raise TypeError(f'{where} returned {type(samples).__name__}; expected a list of '
                            'sample dicts.')
        classes = self._metainfo.get('classes')
        if not classes:
            raise ValueError(f'{type(self).__name__}: no classes in the metainfo; expected '
                             "METAINFO = dict(classes=(...)) or metainfo=dict(classes=...).")
        num_classes = len(classes)
        for sample in samples:
            sample_id = sample.get('sample_id') if isinstance(sample, dict) else None
            if not isinstance(sample_id, str):
                raise TypeError(f'{where}: sample {sample!r:.200} has no str "sample_id".')
            if self.MULTI_LABEL:
                score = sample.get('gt_score')
                if not (isinstance(score, np.ndarray) and score.dtype == np.float32
                        and score.shape == (num_classes, )):
                    raise TypeError(f'{where}: sample "{sample_id}" has gt_score {score!r}; '
                                    f'expected a float32 vector of {num_classes} entries.')
            else:
                label = sample.get('gt_label')
                if isinstance(label, (bool, np.bool_)) or not isinstance(label,
                                                                          (int, np.integer)):
                    raise TypeError(f'{where}: sample "{sample_id}" has gt_label {label!r}; '
                                    'expected an int class index.')
                if not 0 <= label < num_classes:
                    raise ValueError(f'{where}: sample "{sample_id}" has gt_label {label}; '
                                     f'expected 0..{num_classes - 1} ({list(classes)}).')
                sample['gt_label'] = int(label)
        if self.MULTI_LABEL and samples:
            scores = np.stack([s['gt_score'] for s in samples])
            bad = ~np.isin(scores, (-1, 0, 1))
            if bad.any():
                row = int(np.flatnonzero(bad.any(1))[0])
                raise ValueError(f'{where}: sample "{samples[row]["sample_id"]}" has gt_score '
                                 f'{samples[row]["gt_score"].tolist()}; expected entries 1 '
                                 '(positive), 0 (negative) or -1 (ignored).')
        ids = Counter(s['sample_id'] for s in samples)
        repeated = sorted(i for i, n in ids.items() if n > 1)
        if repeated:
            raise ValueError(f'{where}: sample ids repeat: {repeated[:5]}; expected unique ids.')
        grouped = [_group_of(s) is not None for s in samples]
        if any(grouped) and not all(grouped):
            lacking = samples[grouped.index(False)]['sample_id']
            raise ValueError(f'{where}: sample "{lacking}" has none of {list(GROUP_KEYS)} while '
                             'other samples have one; expected all samples or none to.')
        return sorted(samples, key=lambda s: s['sample_id'])

    def _divide(self, samples: List[dict]) -> Tuple[List[dict], str]:
        """The samples of the divided split ``self.split``, and how the split was made."""
        ids = [s['sample_id'] for s in samples]
        groups = ([_group_of(s) for s in samples]
                  if samples and _group_of(samples[0]) is not None else None)
        stratify = None if self.MULTI_LABEL else [s['gt_label'] for s in samples]
        fractions, seed = self.split_fractions, self.split_seed
        splits = load_or_create_split(
            self.split_file,
            self.data_root,
            ids,
            make_split_fn=lambda all_ids: split_ids(all_ids, fractions, seed, groups=groups,
                                                    stratify=stratify),
            meta=dict(dataset=type(self).__name__, fractions=fractions, split_seed=seed,
                      grouped=groups is not None, stratified=stratify is not None))
        keep = set(splits[self.split])
        how = (f'{_format_fractions(fractions)} of {len(samples)} samples, seed {seed}'
               + (f', grouped by {_group_key(samples[0])} ({len(set(groups))} groups)'
                  if groups is not None else '')
               + (', stratified by label' if stratify is not None else '')
               + (f', split file "{self.split_file}"' if self.split_file else ''))
        return [s for s in samples if s['sample_id'] in keep], how

    def load_data_list(self) -> List[dict]:
        """Read the layout, select the split, check and log it.

        Returns:
            list[dict]: The split's samples, sorted by ``sample_id``.
        """
        name = type(self).__name__
        if not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f'{name}: data_root "{self.data_root}" not found' +
                (f'; expected the official layout:\n{self.LAYOUT}' if self.LAYOUT else '.'))
        if self.split in self.split_fractions or (self.split == ALL_SPLIT
                                                  and self.split_fractions):
            samples = self._check_samples(self.load_samples(), 'load_samples')
            if not samples:
                raise ValueError(f'{name}: found no samples in "{self.data_root}"; expected '
                                 + (f'the layout:\n{self.LAYOUT}' if self.LAYOUT else
                                    'labelled images.'))
            if self.split == ALL_SPLIT:
                how = 'every sample, not divided'
            else:
                samples, how = self._divide(samples)
        else:
            official = self.official_splits()
            # Names by iteration and one lookup: a lazy mapping reads only the split asked for.
            names = list(official)
            if self.split not in names:
                choices = list(self.split_fractions) + (
                    [ALL_SPLIT] if self.split_fractions else []) + names
                raise ValueError(f'{name}: split must be one of {choices}, got {self.split!r}.')
            samples = self._check_samples(official[self.split], 'official_splits')
            how = 'the official split'
        if not samples:
            raise ValueError(f'{name}: split "{self.split}" of "{self.data_root}" is empty '
                             f'({how}); expected samples in it.')
        classes = self._metainfo['classes']
        MMLogger.get_current_instance().info(
            f'{name} split "{self.split}" ({how}): {len(samples)} samples, '
            f'{len(classes)} classes:\n'
            + summarize_labels(samples, classes, self.MULTI_LABEL))
        return use_preresized(samples, self.data_root, self.preresized, name,
                              pipeline=self.pipeline)

    def get_cat_ids(self, idx: int) -> List[int]:
        """The class indices of a sample: its label, or its positive classes (multi-label).

        Args:
            idx (int): Index of the sample.

        Returns:
            list[int]: Class indices.
        """
        info = self.get_data_info(idx)
        if self.MULTI_LABEL:
            return np.flatnonzero(info['gt_score'] == 1).tolist()
        return [int(info['gt_label'])]

    def extra_repr(self) -> List[str]:
        """Lines added to the dataset's repr."""
        return [f'Data root: \t{self.data_root}', f'Split: \t{self.split}']
