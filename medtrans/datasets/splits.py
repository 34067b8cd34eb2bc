"""Deterministic dataset splits and the JSON record that keeps them.

:func:`split_ids` divides ids into named splits, reproducibly: the ids are sorted before a seeded
shuffle, so the result depends only on the set of ids, the fractions and the seed, not on file
system order, the machine or the run. It can keep groups (e.g. all images of one patient, named
by :data:`GROUP_KEYS`) in one split and stratify by a label.

A split record is a JSON file ``{"meta": {...}, "splits": {name: [ids...]}}``.
:func:`load_or_create_split` reads one back after checking it still fits the data on disk, or
makes the split and writes it. :func:`record_splits` keeps the record of a built dataset's
divided split in a run's work dir (``<work_dir>/splits/``, :class:`SplitRecordMixin` names the
file), or checks the dataset against the record there;
:class:`~medtrans.engine.hooks.SplitRecordHook` calls it as each loop of a run starts.
"""
import json
import math
import os
import os.path as osp
from collections import Counter, defaultdict
from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np

from medtrans.fileio import atomic_write_text

from .utils import problems_collected

__all__ = [
    'split_ids', 'load_or_create_split', 'check_split_file_path', 'record_split',
    'record_splits', 'SplitRecordMixin', 'SPLIT_RECORD_DIR', 'GROUP_KEYS', 'group_key'
]

#: Data-info keys that name the patient, the lesion or another group of a sample, in the order
#: looked up; samples sharing one are kept in one divided split, ``check_dataset`` reports one
#: found in two splits, and the bootstrap intervals of the summaries resample them (the key
#: names the unit: patients, lesions, groups).
GROUP_KEYS = ('patient_id', 'lesion_id', 'group')

#: The folder of a run's split records, inside its work dir.
SPLIT_RECORD_DIR = 'splits'

def group_key(sample: dict) -> Optional[str]:
    """The first of :data:`GROUP_KEYS` that a sample (or data info) holds, or None."""
    return next((key for key in GROUP_KEYS if sample.get(key) is not None), None)


def _largest_remainder(total: int, weights: Sequence[float]) -> List[int]:
    """Integer counts summing to ``total``, proportional to ``weights`` (Hamilton's method)."""
    quotas = [total * w for w in weights]
    counts = [math.floor(q) for q in quotas]
    # Ties go to the earlier entry, so the rounding is deterministic.
    by_remainder = sorted(range(len(quotas)), key=lambda i: (counts[i] - quotas[i], i))
    for i in by_remainder[:total - sum(counts)]:
        counts[i] += 1
    return counts


def _stratum_targets(stratum_sizes: Sequence[int], totals: Sequence[int],
                     weights: Sequence[float]) -> List[List[int]]:
    """Per-stratum split counts whose rows sum to the stratum sizes and columns to ``totals``."""
    table = [[math.floor(size * w) for w in weights] for size in stratum_sizes]
    row_left = [size - sum(row) for size, row in zip(stratum_sizes, table)]
    col_left = [tot - sum(row[k] for row in table) for k, tot in enumerate(totals)]
    cells = sorted((table[s][k] - stratum_sizes[s] * weights[k], s, k)
                    for s in range(len(stratum_sizes)) for k in range(len(weights)))
    # First the cells that lost most to rounding, one each; then fill what is left row by row,
    # which always completes because the row and column deficits have the same sum.
    for _, s, k in cells:
        if row_left[s] > 0 and col_left[k] > 0:
            table[s][k] += 1
            row_left[s] -= 1
            col_left[k] -= 1
    for s in range(len(stratum_sizes)):
        for k in range(len(weights)):
            take = min(row_left[s], col_left[k])
            table[s][k] += take
            row_left[s] -= take
            col_left[k] -= take
    return table


def split_ids(ids: Sequence[Hashable],
              fractions: Dict[str, float],
              seed: int,
              groups: Optional[Sequence[Hashable]] = None,
              stratify: Optional[Sequence[Hashable]] = None) -> Dict[str, list]:
    """Divide ids into named splits, deterministically.

    The ids (and groups) are sorted, then shuffled with NumPy's legacy ``RandomState``, whose
    stream is frozen across NumPy versions, so the same inputs give the same split everywhere.
    Split sizes follow the fractions by largest-remainder rounding: without groups they are exact
    (``round``-like) and sum to ``len(ids)``.

    Args:
        ids (Sequence[Hashable]): Unique, mutually sortable sample ids.
        fractions (dict[str, float]): Split name -> fraction of the ids; non-negative, summing to
            1. The dict order is the order in which splits are filled.
        seed (int): Seed of the shuffle.
        groups (Sequence[Hashable], optional): One group key per id (e.g. patient id). All ids of
            a group go to the same split; split sizes then match the fractions only approximately
            (to within about one group per split boundary). Defaults to None.
        stratify (Sequence[Hashable], optional): One label per id. Each label's ids are divided
            by the fractions separately, so label proportions are approximately preserved in
            every split. With groups, a group's label is its most common one (ties: the smallest).
            Defaults to None.

    Returns:
        dict[str, list]: Split name -> sorted ids, in the order of ``fractions``.

    Raises:
        ValueError: Empty ids, duplicate ids, bad fractions, or groups/stratify of another length.
    """
    ids = list(ids)
    if not ids:
        raise ValueError('split_ids: got no ids to split.')
    if len(set(ids)) != len(ids):
        dupes = sorted(i for i, c in Counter(ids).items() if c > 1)
        raise ValueError(f'split_ids: ids must be unique; duplicated: {dupes[:5]}')
    if not fractions:
        raise ValueError('split_ids: fractions must name at least one split.')
    for name, frac in fractions.items():
        if not (isinstance(frac, (int, float)) and math.isfinite(frac) and frac >= 0):
            raise ValueError(f'split_ids: fraction of split "{name}" must be a finite number '
                             f'>= 0, got {frac!r}.')
    if not math.isclose(sum(fractions.values()), 1.0, abs_tol=1e-6):
        raise ValueError(f'split_ids: fractions must sum to 1, got {fractions} '
                         f'(sum {sum(fractions.values())}).')
    for arg_name, values in (('groups', groups), ('stratify', stratify)):
        if values is not None and len(values) != len(ids):
            raise ValueError(f'split_ids: {arg_name} has {len(values)} entries for '
                             f'{len(ids)} ids; expected one per id.')

    order = sorted(range(len(ids)), key=lambda i: ids[i])
    ids = [ids[i] for i in order]
    group_of = [groups[i] for i in order] if groups is not None else ids
    label_of = [stratify[i] for i in order] if stratify is not None else [None] * len(ids)

    members: Dict[Hashable, list] = defaultdict(list)
    unit_labels: Dict[Hashable, list] = defaultdict(list)
    for id_, group, label in zip(ids, group_of, label_of):
        members[group].append(id_)
        unit_labels[group].append(label)
    units_by_stratum: Dict[Hashable, list] = defaultdict(list)
    for group in sorted(members):
        counts = Counter(unit_labels[group])
        label = min(counts, key=lambda lab: (-counts[lab], lab)) if stratify is not None else None
        units_by_stratum[label].append(group)

    names = list(fractions)
    # Normalised so that fractions summing to 1 only within tolerance still round to len(ids).
    weights = [float(fractions[name]) / sum(fractions.values()) for name in names]
    strata = sorted(units_by_stratum)
    stratum_sizes = [sum(len(members[g]) for g in units_by_stratum[lab]) for lab in strata]
    targets = _stratum_targets(stratum_sizes, _largest_remainder(len(ids), weights), weights)

    rng = np.random.RandomState(seed)
    result: Dict[str, list] = {name: [] for name in names}
    for label, target in zip(strata, targets):
        units = units_by_stratum[label]
        bounds = np.cumsum(target)
        filled = 0
        for pos in rng.permutation(len(units)):
            unit = members[units[pos]]
            # A unit goes to the split whose id range holds its midpoint; for single ids this
            # reproduces the target counts exactly.
            k = int(np.searchsorted(bounds, filled + len(unit) / 2, side='right'))
            result[names[k]].extend(unit)
            filled += len(unit)
    return {name: sorted(split) for name, split in result.items()}


def check_split_file_path(split_file: str, data_root: Optional[str]) -> str:
    """Check that a split record is not placed in the data folder, and return its path.

    Args:
        split_file (str): Path of the split record.
        data_root (str, optional): The dataset folder, which must not contain the record.

    Returns:
        str: The absolute path of the record.

    Raises:
        ValueError: The path lies inside data_root.
    """
    split_path = osp.realpath(osp.abspath(osp.expanduser(str(split_file))))
    if data_root is not None:
        root = osp.realpath(osp.abspath(osp.expanduser(str(data_root))))
        if split_path == root or split_path.startswith(root + os.sep):
            raise ValueError(
                f'split record "{split_file}" lies inside data_root "{data_root}". Splits are '
                'never written into the data folder: choose a work dir (or split_file) '
                'outside it.')
    return split_path


#: What a user can do about a record that does not fit, said by every such error.
_NEW_SPLIT = ('To make a new split, delete the file or use another work dir (or split_file); '
              'to reproduce the recorded run, use the data and arguments it was made with.')


def _verify_record(split_file: str, record, ids: Sequence[Hashable], meta: dict) -> dict:
    """Return the splits of a record read from ``split_file`` after checking it fits the data."""
    if not (isinstance(record, dict) and isinstance(record.get('meta'), dict)
            and isinstance(record.get('splits'), dict)
            and all(isinstance(v, list) for v in record['splits'].values())):
        raise ValueError(f'split record "{split_file}" is not a medtrans split record: expected '
                         'a JSON object {"meta": {...}, "splits": {name: [ids...]}}.')
    for key, value in meta.items():
        if record['meta'].get(key) != value:
            raise ValueError(
                f'split record "{split_file}" was made with {key}={record["meta"].get(key)!r}, '
                f'but this run asks for {key}={value!r}. {_NEW_SPLIT}')
    recorded = [i for split in record['splits'].values() for i in split]
    if len(set(recorded)) != len(recorded):
        dupes = sorted(i for i, c in Counter(recorded).items() if c > 1)
        raise ValueError(f'split record "{split_file}" puts some ids in more than one split '
                         f'(e.g. {dupes[:5]}); expected disjoint splits.')
    on_disk = set(ids)
    missing = sorted(set(recorded) - on_disk)
    if missing:
        raise ValueError(f'split record "{split_file}" lists {len(missing)} ids that are not in '
                         f'the data (e.g. {missing[:5]}); expected every recorded id to exist. '
                         f'The data changed since the split was made. {_NEW_SPLIT}')
    uncovered = sorted(on_disk - set(recorded))
    if uncovered:
        raise ValueError(f'split record "{split_file}" does not cover {len(uncovered)} ids found '
                         f'in the data (e.g. {uncovered[:5]}); expected it to assign every id. '
                         f'The data changed since the split was made. {_NEW_SPLIT}')
    return record['splits']


def load_or_create_split(split_file: Optional[str], data_root: Optional[str],
                         ids: Sequence[Hashable],
                         make_split_fn: Callable[[Sequence[Hashable]], Dict[str, list]],
                         meta: dict) -> Dict[str, list]:
    """Read a recorded split, or make one and record it.

    * ``split_file`` None: the split is made by ``make_split_fn(ids)`` and not saved; so it
      is where problems of the data were collected (``check_dataset``,
      :func:`~medtrans.datasets.utils.collect_problems`): ``ids`` lack their rows and files,
      and a record is neither checked against them nor written from them.
    * ``split_file`` exists: its record is read and checked: its ``meta`` must agree with
      ``meta``, every id in it must be in ``ids``, every id in ``ids`` must be in it, and no id
      may be in two splits.
    * ``split_file`` does not exist: the split is made and written atomically (temporary file in
      the same folder, then ``os.replace``), creating parent folders. Concurrent writers (e.g.
      distributed ranks) write identical content, and readers never see a partial file.

    Args:
        split_file (str, optional): Path of the JSON record; never inside ``data_root``.
        data_root (str, optional): The dataset folder.
        ids (Sequence[Hashable]): The ids found on disk; JSON-serialisable.
        make_split_fn (Callable): Maps ``ids`` to ``{split name: [ids]}``.
        meta (dict): What determines the split (e.g. seed and fractions); JSON-serialisable.
            Stored in the record and compared on reading.

    Returns:
        dict[str, list]: Split name -> ids.

    Raises:
        ValueError: See :func:`check_split_file_path`, or a record that does not fit the data.
    """
    if split_file is None or problems_collected():
        return make_split_fn(ids)
    path = check_split_file_path(split_file, data_root)
    if osp.exists(path):
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f'split record "{split_file}" could not be read as JSON: '
                             f'{err}') from err
        return _verify_record(split_file, record, ids, meta)
    splits = make_split_fn(ids)
    atomic_write_text(path, json.dumps(dict(meta=meta, splits=splits), indent=1) + '\n')
    return splits


def record_split(split_file: str, splits: Dict[str, list], meta: dict,
                 data_root: Optional[str] = None) -> bool:
    """Record a split made elsewhere, or check that the record already there holds exactly it.

    The record is written, or read and checked against the data, by
    :func:`load_or_create_split` (the ids are those of ``splits``); then every id must be in
    the same split as recorded.

    Args:
        split_file (str): Path of the JSON record; never inside ``data_root``.
        splits (dict[str, list]): Split name -> ids, disjoint; JSON-serialisable.
        meta (dict): What determines the split, as for :func:`load_or_create_split`.
        data_root (str, optional): The dataset folder. Defaults to None.

    Returns:
        bool: True if the record was written, False if an existing one was checked.

    Raises:
        ValueError: A record that does not fit (see :func:`load_or_create_split`), or that
            puts ids in other splits, naming the file, the ids and what to do.
    """
    path = check_split_file_path(split_file, data_root)
    written = not osp.exists(path)
    ids = [i for split in splits.values() for i in split]
    recorded = load_or_create_split(path, data_root, ids, lambda _: splits, meta)
    recorded_in = {i: name for name, split in recorded.items() for i in split}
    moved = sorted((i, recorded_in[i], name) for name, split in splits.items() for i in split
                   if recorded_in[i] != name)
    if moved:
        shown = ', '.join(f'"{i}" is in "{was}" there but in "{now}" here'
                          for i, was, now in moved[:5])
        raise ValueError(
            f'split record "{split_file}" assigns {len(moved)} ids to other splits than this '
            f'run does (e.g. {shown}); expected the same split. The labels or groups of the data '
            'or the splitting code changed since the record was made, or the file was edited. '
            'To train on the recorded split, give the dataset split_file="'
            f'{split_file}"; to make a new split, delete the file or use another work dir.')
    return written


class SplitRecordMixin:
    """What a dataset that divides its data into seeded splits tells :func:`record_splits`.

    A dataset sets ``self._divided_split = (meta, splits)`` when it selects its split from a
    division (in ``load_data_list``), and leaves it None when it reads a split as published. It
    keeps the ids of every split of the division, not only its own, because the record holds
    them all (a few MB for CheXpert's 224k images).
    """

    #: Stem of the record's file name in the work dir, ``<stem>_seed<split_seed>.json``; ''
    #: uses the class name.
    SPLIT_RECORD: str = ''
    _divided_split: Optional[Tuple[dict, Dict[str, list]]] = None

    @property
    def split_record_name(self) -> str:
        """The file name of the record of this dataset's division, e.g. ``aptos2019_seed0.json``."""
        return f'{self.SPLIT_RECORD or type(self).__name__}_seed{self.split_seed}.json'

    def divided_split(self) -> Optional[Tuple[dict, Dict[str, list]]]:
        """The division this dataset's split was selected from; loads the data if still lazy.

        Returns:
            tuple[dict, dict[str, list]] | None: ``(meta, splits)``: what determines the
            division, and split name -> ids of every split of it. None when the split is not a
            division (a published split, the whole set).
        """
        self.full_init()
        return self._divided_split


def _leaf_datasets(dataset) -> list:
    """The datasets inside wrappers (``datasets`` of ConcatDataset, ``dataset`` of
    RepeatDataset and ClassBalancedDataset)."""
    if isinstance(getattr(dataset, 'datasets', None), (list, tuple)):
        return [leaf for inner in dataset.datasets for leaf in _leaf_datasets(inner)]
    if getattr(dataset, 'dataset', None) is not None:
        return _leaf_datasets(dataset.dataset)
    return [dataset]


def record_splits(datasets, work_dir: str) -> List[Tuple[str, bool]]:
    """Keep the divided splits of built datasets in a run's work dir, or check them there.

    Each dataset (inside wrappers too) with a division (:meth:`SplitRecordMixin.divided_split`)
    has its record at ``<work_dir>/splits/<split_record_name>``: written if absent, else the
    dataset's split must equal it (:func:`record_split`). Other datasets are skipped, and
    datasets of one division (a run's train, val and test sets) are checked once.

    Args:
        datasets: A built dataset, possibly a wrapper, or a list of them.
        work_dir (str): The run's work dir.

    Returns:
        list[tuple[str, bool]]: (record path, whether it was written) per division.

    Raises:
        ValueError: A record that does not hold a dataset's split (see :func:`record_split`).
    """
    done, checked = [], {}
    datasets = datasets if isinstance(datasets, (list, tuple)) else [datasets]
    for leaf in (leaf for dataset in datasets for leaf in _leaf_datasets(dataset)):
        divided = leaf.divided_split() if isinstance(leaf, SplitRecordMixin) else None
        if divided is None:
            continue
        path = osp.join(work_dir, SPLIT_RECORD_DIR, leaf.split_record_name)
        # The train, val and test sets of one division share a record: it is read once.
        if checked.get(path) != divided:
            meta, splits = divided
            checked[path] = divided
            done.append((path, record_split(path, splits, meta, getattr(leaf, 'data_root', None))))
    return done
