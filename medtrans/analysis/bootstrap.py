"""Bootstrap confidence intervals of a table cell from its runs' per-image records.

A cell's statistic is the median over its runs (seeds) of the test metric. Resampling the test
set with replacement (the same resample for every run, as the runs share the test set) and
recomputing that median gives its bootstrap distribution; the interval is its percentiles. The
metric is the run config's own test metric (e.g. ``CohenKappaMetric(weights='quadratic')``,
``LesionSegMetric``'s pooled IoU), computed from the per-image CSV of ``tools/test.py --out``
or ``tools/knn_eval.py --out`` (class probabilities or k-NN scores, or pixel counts for
segmentation), so it is the number the run reported, on other samples of the test set.

The resampled unit is the one the dataset's split groups by (a cluster bootstrap): a patient's
images (CheXpert, CBIS-DDSM, CSAW-S), a lesion's (ISIC 2019), and single images only where the
samples carry no group (APTOS 2019, PCam, ISIC 2018). Images of one patient are correlated, so
resampling them one by one would give too narrow an interval. :func:`dataset_groups` reads the
groups from the test dataset's own data infos (the first of
:data:`~medtrans.datasets.splits.GROUP_KEYS` they carry).
"""
import copy
import csv
from typing import Callable, Dict, Hashable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config
from mmengine.registry import DefaultScope

from medtrans.datasets.splits import group_key
from medtrans.registry import DATASETS, METRICS

__all__ = ['read_records', 'run_metric', 'dataset_groups', 'resampling_units',
           'bootstrap_interval', 'IMAGE_UNIT']

#: The unit resampled where the samples carry no group.
IMAGE_UNIT = 'image'


def read_records(path: str) -> Tuple[List[str], list, List[str]]:
    """Read the per-image CSV of ``tools/test.py --out`` as the test metrics keep their
    results.

    Returns:
        tuple: sample ids; per image ``(scores, truth)`` (classification: class probabilities,
        and a class index or a multi-label 1 / 0 / -1 vector) or ``(tp, fp, fn)``
        (segmentation); the class names ([] for segmentation).

    Raises:
        ValueError: A file that is not such a CSV; the message names it.
    """
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    if len(rows) < 2 or rows[0][0] != 'sample_id':
        raise ValueError(f'"{path}" is not a per-image CSV of tools/test.py --out (header '
                         'sample_id, ...) with at least one row.')
    header, body = rows[0], rows[1:]
    ids = [row[0] for row in body]
    try:
        if header[1:] == ['tp', 'fp', 'fn']:
            return ids, [tuple(int(v) for v in row[1:4]) for row in body], []
        prob = [i for i, name in enumerate(header) if name.startswith('prob_')]
        classes = [header[i][len('prob_'):] for i in prob]
        scores = np.array([[float(row[i]) for i in prob] for row in body])
        if 'gt_label' in header:
            column = header.index('gt_label')
            truth = np.array([int(row[column]) for row in body])
        else:
            gt = [header.index(f'gt_{name}') for name in classes]
            truth = np.array([[int(float(row[i])) for i in gt] for row in body], np.int8)
    except (ValueError, IndexError) as err:
        raise ValueError(f'"{path}": unreadable row ({err}).') from err
    return ids, list(zip(scores, truth)), classes


def run_metric(config: str, metric: str, classes: Sequence[str],
               results: list) -> Callable[[list], float]:
    """The config's test metric named ``metric`` as a function of per-image results: the first
    metric of its test evaluator that reports ``metric`` on these results.

    Raises:
        ValueError: No metric of the config's test evaluator reports ``metric``.
    """
    cfg = Config.fromfile(config)
    evaluator = cfg.test_evaluator
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope') or 'medtrans'):
        metrics = [METRICS.build(m) for m in
                   (evaluator if isinstance(evaluator, list) else [evaluator])]
    for candidate in metrics:
        if classes:
            candidate.dataset_meta = dict(classes=list(classes))

        def compute(subset, candidate=candidate):
            return candidate.compute_metrics(subset)[metric]

        try:
            compute(results)
        except (ValueError, TypeError, KeyError, IndexError):
            continue  # another kind of metric, or not this one
        return compute
    raise ValueError(f'{config}: no metric of its test_evaluator reports "{metric}" from its '
                     'per-image records.')


def _value(compute, subset: list) -> float:
    """The metric, or NaN where a resample leaves it undefined (e.g. one class only)."""
    try:
        return float(compute(subset))
    except ValueError:
        return float('nan')


def dataset_groups(dataset: dict,
                   scope: str = 'medtrans') -> Tuple[Optional[Dict[str, Hashable]], str]:
    """The groups of a test set, as its dataset's data infos name them.

    The dataset is built from its config without its pipeline (its files are listed and its
    tables read, no image is decoded), as the test run built it: the same split of the same data.

    Args:
        dataset (dict): The config of the test dataset (a config's
            ``test_dataloader.dataset``).
        scope (str): The config's ``default_scope``. Defaults to 'medtrans'.

    Returns:
        tuple: ``{sample id: group}`` for every sample, keyed by each of its ``sample_id`` and
        ``img_path`` (the ids the per-image CSVs write), and the unit, the group key without
        ``_id`` (``'patient'``, ``'lesion'``, ``'group'``); ``(None, 'image')`` when the
        samples carry no group key.
    """
    dataset = dict(copy.deepcopy(dataset), pipeline=[])
    with DefaultScope.overwrite_default_scope(scope):
        built = DATASETS.build(dataset)
    infos = [built.get_data_info(i) for i in range(len(built))]
    key = group_key(infos[0]) if infos else None
    if key is None:
        return None, IMAGE_UNIT
    groups: Dict[str, Hashable] = {}
    for info in infos:
        for id_key in ('sample_id', 'img_path'):
            if id_key in info:
                groups[str(info[id_key])] = info[key]
    return groups, key[:-len('_id')] if key.endswith('_id') else key


def resampling_units(ids: Sequence[str], groups: Optional[Mapping[str, Hashable]] = None,
                     source: str = 'the per-image records') -> List[List[int]]:
    """The positions of the images of each resampled unit, units in order of first appearance.

    Args:
        ids (Sequence[str]): The images' ids, in file order.
        groups (Mapping[str, Hashable], optional): Image id -> group (:func:`dataset_groups`).
            None makes each image its own unit. Defaults to None.
        source (str): What holds the ids, named in errors. Defaults to 'the per-image records'.

    Raises:
        ValueError: An id without a group.
    """
    if groups is None:
        return [[position] for position in range(len(ids))]
    units: Dict[Hashable, List[int]] = {}
    for position, sample_id in enumerate(ids):
        if sample_id not in groups:
            raise ValueError(f'{source}: image "{sample_id}" is not in the test set whose groups '
                             'were read (another data root or split?); expected every image of '
                             'the per-image records in it.')
        units.setdefault(groups[sample_id], []).append(position)
    return list(units.values())


def bootstrap_interval(runs: Sequence[Tuple[str, str, str]], num_samples: int = 1000,
                       level: float = 0.95, seed: int = 0,
                       groups: Optional[Mapping[str, Hashable]] = None
                       ) -> Optional[Tuple[float, float]]:
    """Percentile interval of a cell's median metric over bootstrap resamples of its test set.

    Each resample draws as many units as the test set has, with replacement
    (``rng.integers(0, units, units)``), and takes every image of each drawn unit, as often as
    it was drawn. Units are the groups (patients, lesions) where ``groups`` is given, in order
    of their first image in the records; else the images, in file order.

    Args:
        runs (Sequence[tuple]): ``(config, metric name, per-image CSV)`` of each run.
        num_samples (int): Resamples. Defaults to 1000.
        level (float): Coverage. Defaults to 0.95.
        seed (int): Seed of the resampling (``numpy.random.default_rng``). Defaults to 0.
        groups (Mapping[str, Hashable], optional): Image id -> its group
            (:func:`dataset_groups`); None resamples images. Defaults to None.

    Returns:
        tuple[float, float] | None: (low, high); None when a resample leaves the metric
        undefined (e.g. a class without images) in more than half of the resamples.

    Raises:
        ValueError: Runs whose predictions cover different images, or an image without a
            group.
    """
    data = []
    for config, metric, path in runs:
        ids, results, classes = read_records(path)
        data.append((ids, results, run_metric(config, metric, classes, results)))
    ids = data[0][0]
    for other, (_, _, path) in zip(data[1:], runs[1:]):
        if other[0] != ids:
            raise ValueError(f'"{path}" holds other images (or another order) than '
                             f'"{runs[0][2]}"; the runs of a cell share the test set.')
    units = resampling_units(ids, groups, f'"{runs[0][2]}"')
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(num_samples):
        index = [i for unit in rng.integers(0, len(units), size=len(units)) for i in units[unit]]
        values = [_value(compute, [results[i] for i in index])
                  for _, results, compute in data]
        stats.append(float(np.median(values)))
    stats = np.asarray(stats)
    finite = stats[np.isfinite(stats)]
    if len(finite) < num_samples / 2:
        return None
    tail = (100 - 100 * level) / 2  # in this order, 2.5 exactly for 0.95
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)
