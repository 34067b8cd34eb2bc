"""Bootstrap confidence intervals of a table cell from its runs' per-image predictions.

A cell's statistic is the median over its runs (seeds) of the test metric. Resampling the test
images with replacement (the same resample for every run, as the runs share the test set) and
recomputing that median gives its bootstrap distribution; the interval is its percentiles. The
metric is the run config's own test metric (e.g. ``CohenKappaMetric(weights='quadratic')``),
computed from ``predictions.csv`` (``tools/test.py --out``), so it is the number the run
reported, on other samples of images.
"""
import csv
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config
from mmengine.registry import DefaultScope

from medtrans.registry import METRICS

__all__ = ['read_predictions', 'run_metric', 'bootstrap_interval']


def read_predictions(path: str) -> Tuple[List[str], np.ndarray, np.ndarray, List[str]]:
    """Read a predictions CSV of ``tools/test.py --out``.

    Returns:
        tuple: sample ids, scores (N, C) float64, ground truth ((N,) int class indices, or
        (N, C) int8 of 1 / 0 / -1 for multi-label data) and the class names.

    Raises:
        ValueError: A file that is not such a CSV; the message names it.
    """
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    if len(rows) < 2 or rows[0][0] != 'sample_id':
        raise ValueError(f'"{path}" is not a predictions CSV of tools/test.py --out (header '
                         'sample_id, gt..., prob_<class>...) with at least one row.')
    header = rows[0]
    prob = [i for i, name in enumerate(header) if name.startswith('prob_')]
    classes = [header[i][len('prob_'):] for i in prob]
    try:
        scores = np.array([[float(row[i]) for i in prob] for row in rows[1:]])
        if 'gt_label' in header:
            column = header.index('gt_label')
            truth = np.array([int(row[column]) for row in rows[1:]])
        else:
            gt = [header.index(f'gt_{name}') for name in classes]
            truth = np.array([[int(float(row[i])) for i in gt] for row in rows[1:]], np.int8)
    except (ValueError, IndexError) as err:
        raise ValueError(f'"{path}": unreadable row ({err}).') from err
    return [row[0] for row in rows[1:]], scores, truth, classes


def run_metric(config: str, metric: str, classes: Sequence[str], scores: np.ndarray,
               truth: np.ndarray) -> Callable[[np.ndarray, np.ndarray], float]:
    """The config's test metric named ``metric`` as a function of (scores, truth) arrays: the
    first metric of its test evaluator that reports ``metric`` on these predictions.

    Raises:
        ValueError: No metric of the config's test evaluator reports ``metric``.
    """
    cfg = Config.fromfile(config)
    evaluator = cfg.test_evaluator
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope') or 'medtrans'):
        metrics = [METRICS.build(m) for m in
                   (evaluator if isinstance(evaluator, list) else [evaluator])]
    for candidate in metrics:
        candidate.dataset_meta = dict(classes=list(classes))

        def compute(scores, truth, candidate=candidate):
            return candidate.compute_metrics(list(zip(scores, truth)))[metric]

        try:
            compute(scores, truth)
        except (ValueError, TypeError, KeyError, IndexError):
            continue  # another kind of metric, or not this one
        return compute
    raise ValueError(f'{config}: no metric of its test_evaluator reports "{metric}" from '
                     'class probabilities and labels.')


def _value(compute, scores, truth) -> float:
    """The metric, or NaN where a resample leaves it undefined (e.g. one class only)."""
    try:
        return float(compute(scores, truth))
    except ValueError:
        return float('nan')


def bootstrap_interval(runs: Sequence[Tuple[str, str, str]], num_samples: int = 1000,
                       level: float = 0.95, seed: int = 0) -> Optional[Tuple[float, float]]:
    """Percentile interval of a cell's median metric over bootstrap resamples of its images.

    Args:
        runs (Sequence[tuple]): ``(config, metric name, predictions CSV)`` of each run.
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
        ids, scores, truth, classes = read_predictions(path)
        data.append((ids, scores, truth, run_metric(config, metric, classes, scores, truth)))
    ids = data[0][0]
    for other, (_, _, path) in zip(data[1:], runs[1:]):
        if other[0] != ids:
            raise ValueError(f'"{path}" holds other images (or another order) than '
                             f'"{runs[0][2]}"; the runs of a cell share the test set.')
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(num_samples):
        index = rng.integers(0, len(ids), size=len(ids))
        values = [_value(compute, scores[index], truth[index])
                  for _, scores, truth, compute in data]
        stats.append(float(np.median(values)))
    stats = np.asarray(stats)
    finite = stats[np.isfinite(stats)]
    if len(finite) < num_samples / 2:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)
