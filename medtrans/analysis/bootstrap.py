"""Bootstrap confidence intervals of a table cell from its runs' per-image records.

A cell's statistic is the median over its runs (seeds) of the test metric. Resampling the test
images with replacement (the same resample for every run, as the runs share the test set) and
recomputing that median gives its bootstrap distribution; the interval is its percentiles. The
metric is the run config's own test metric (e.g. ``CohenKappaMetric(weights='quadratic')``,
``LesionSegMetric``'s pooled IoU), computed from the per-image CSV of ``tools/test.py --out``
(class probabilities, or pixel counts for segmentation), so it is the number the run reported,
on other samples of images.
"""
import csv
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config
from mmengine.registry import DefaultScope

from medtrans.registry import METRICS

__all__ = ['read_records', 'run_metric', 'bootstrap_interval']


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


def bootstrap_interval(runs: Sequence[Tuple[str, str, str]], num_samples: int = 1000,
                       level: float = 0.95, seed: int = 0) -> Optional[Tuple[float, float]]:
    """Percentile interval of a cell's median metric over bootstrap resamples of its images.

    Args:
        runs (Sequence[tuple]): ``(config, metric name, per-image CSV)`` of each run.
        num_samples (int): Resamples. Defaults to 1000.
        level (float): Coverage. Defaults to 0.95.
        seed (int): Seed of the resampling (``numpy.random.default_rng``). Defaults to 0.

    Returns:
        tuple[float, float] | None: (low, high); None when a resample leaves the metric
        undefined (e.g. a class without images) in more than half of the resamples.

    Raises:
        ValueError: Runs whose predictions cover different images.
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
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(num_samples):
        index = rng.integers(0, len(ids), size=len(ids))
        values = [_value(compute, [results[i] for i in index])
                  for _, results, compute in data]
        stats.append(float(np.median(values)))
    stats = np.asarray(stats)
    finite = stats[np.isfinite(stats)]
    if len(finite) < num_samples / 2:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)
