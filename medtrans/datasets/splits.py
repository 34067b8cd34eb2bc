"""Deterministic dataset splits and the JSON record that keeps them.

:func:`split_ids` divides ids into named splits, reproducibly: the ids are sorted before a seeded
shuffle, so the result depends only on the set of ids, the fractions and the seed, not on file
system order, the machine or the run. It can keep groups (e.g. all images of one patient) in one
split and stratify by a label.

:func:`load_or_create_split` records a split in a JSON file next to the work dir, and on later runs
reads that record back after checking it still fits the data on disk.
"""
import json
import math
import os
import os.path as osp
from collections import Counter, defaultdict
from typing import Callable, Dict, Hashable, List, Optional, Sequence

import numpy as np

from medtrans.fileio import atomic_write_text

__all__ = ['split_ids', 'load_or_create_split', 'check_split_file_path', 'WORK_DIR_PLACEHOLDER']

#: Placeholder that the training tools replace with the run's work dir in a ``split_file``.
WORK_DIR_PLACEHOLDER = '{work_dir}'


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
    """Check that a split file path is usable, and return it normalised.

    Args:
        split_file (str): Path of the split record.
        data_root (str, optional): The dataset folder, which must not contain the split file.

    Returns:
        str: The absolute path of the split file.

    Raises:
        ValueError: The path still holds the ``{work_dir}`` placeholder, or lies inside data_root.
    """
    if WORK_DIR_PLACEHOLDER in str(split_file):
        raise ValueError(
            f'split_file "{split_file}" still contains the placeholder "{WORK_DIR_PLACEHOLDER}". '
            'The training tools (tools/train.py, tools/test.py) fill it in with the run\'s work '
            'dir; when building the dataset yourself, give a real path.')
    split_path = osp.realpath(osp.abspath(osp.expanduser(str(split_file))))
    if data_root is not None:
        root = osp.realpath(osp.abspath(osp.expanduser(str(data_root))))
        if split_path == root or split_path.startswith(root + os.sep):
            raise ValueError(
                f'split_file "{split_file}" lies inside data_root "{data_root}". Splits are '
                'never written into the data folder: put the split file in the work dir.')
    return split_path


def _verify_record(split_file: str, record, ids: Sequence[Hashable], meta: dict) -> dict:
    """Return the splits of a record read from ``split_file`` after checking it fits the data."""
    if not (isinstance(record, dict) and isinstance(record.get('meta'), dict)
            and isinstance(record.get('splits'), dict)
            and all(isinstance(v, list) for v in record['splits'].values())):
        raise ValueError(f'split_file "{split_file}" is not a medtrans split record: expected '
                         'a JSON object {"meta": {...}, "splits": {name: [ids...]}}.')
    for key, value in meta.items():
        if record['meta'].get(key) != value:
            raise ValueError(
                f'split_file "{split_file}" was made with {key}={record["meta"].get(key)!r}, '
                f'but this run asks for {key}={value!r}. Delete the file or point split_file '
                'elsewhere to make a new split.')
    recorded = [i for split in record['splits'].values() for i in split]
    if len(set(recorded)) != len(recorded):
        dupes = sorted(i for i, c in Counter(recorded).items() if c > 1)
        raise ValueError(f'split_file "{split_file}" puts some ids in more than one split '
                         f'(e.g. {dupes[:5]}); expected disjoint splits.')
    on_disk = set(ids)
    missing = sorted(set(recorded) - on_disk)
    if missing:
        raise ValueError(f'split_file "{split_file}" lists {len(missing)} ids that are not in the '
                         f'data (e.g. {missing[:5]}); expected every recorded id to exist.')
    uncovered = sorted(on_disk - set(recorded))
    if uncovered:
        raise ValueError(f'split_file "{split_file}" does not cover {len(uncovered)} ids found in '
                         f'the data (e.g. {uncovered[:5]}); expected it to assign every id. '
                         'The data changed since the split was made: delete the file or point '
                         'split_file elsewhere to make a new split.')
    return record['splits']


def load_or_create_split(split_file: Optional[str], data_root: Optional[str],
                         ids: Sequence[Hashable],
                         make_split_fn: Callable[[Sequence[Hashable]], Dict[str, list]],
                         meta: dict) -> Dict[str, list]:
    """Read a recorded split, or make one and record it.

    * ``split_file`` None: the split is made by ``make_split_fn(ids)`` and not saved.
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
    if split_file is None:
        return make_split_fn(ids)
    path = check_split_file_path(split_file, data_root)
    if osp.exists(path):
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f'split_file "{split_file}" could not be read as JSON: '
                             f'{err}') from err
        return _verify_record(split_file, record, ids, meta)
    splits = make_split_fn(ids)
    atomic_write_text(path, json.dumps(dict(meta=meta, splits=splits), indent=1) + '\n')
    return splits
