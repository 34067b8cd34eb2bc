"""What ``tools/test.py`` adds to a config for its outputs (overlays, per-image CSV, masks), and
its summary of what it measured and wrote."""
import copy
import glob
import numbers
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config

from medtrans.datasets.splits import SPLIT_RECORD_DIR
from medtrans.engine.hooks import MetricsJsonHook
from medtrans.evaluation.metrics import LesionSegMetric
from medtrans.registry import METRICS, VISUALIZERS, is_registered_subclass
from medtrans.visualization import BoundedSegLocalVisualizer

__all__ = ['enable_show_dir', 'read_only_tested_split', 'enable_predictions_csv',
           'enable_mask_export', 'test_summary']


def enable_show_dir(cfg: Config, show_dir: str) -> Config:
    """Make the test run save prediction overlays as PNG files in ``show_dir``.

    With the segmentation configs' :class:`~medtrans.visualization.BoundedSegLocalVisualizer`
    (or a subclass) each image's drawing is ``show_dir/<image stem>.png``, as
    ``tools/infer.py`` names its overlays; another visualizer writes through its backends, in
    ``show_dir/vis_data/vis_image/``.
    """
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise KeyError('--show-dir needs default_hooks.visualization '
                       "(e.g. dict(type='mmseg.SegVisualizationHook')) in the config.")
    hook['draw'] = True
    hook['interval'] = 1
    if is_registered_subclass(VISUALIZERS, cfg.visualizer.get('type'), BoundedSegLocalVisualizer,
                              cfg.get('default_scope', 'medtrans')):
        cfg.visualizer['out_dir'] = show_dir
    else:
        cfg.visualizer['save_dir'] = show_dir
    return cfg


def read_only_tested_split(cfg: Config) -> Config:
    """Make a test run read only the split it tests, so the training data need not be on disk.

    Nothing trains in a test run, but MMEngine's Runner builds its train loop, and with it the
    training dataset, when a hook reads ``runner.iter`` (mmseg's ``SegVisualizationHook`` does,
    for ``--show-dir``). The train dataloader is therefore given the tested dataset; it is
    built, never iterated.
    """
    if cfg.get('train_dataloader') is not None and cfg.get('test_dataloader') is not None:
        cfg.train_dataloader.dataset = copy.deepcopy(cfg.test_dataloader.dataset)
    return cfg


def enable_predictions_csv(cfg: Config, out_file: str) -> Config:
    """Make the test run also write its per-image record to ``out_file`` (CSV): class
    probabilities for classification (:class:`~medtrans.evaluation.metrics.DumpPredictionsCsv`),
    pixel counts for a segmentation config, one scored by ``LesionSegMetric``
    (:class:`~medtrans.evaluation.metrics.DumpSegCountsCsv`).
    """
    scope = cfg.get('default_scope', 'medtrans')
    lesion = [m for m in _test_metrics(cfg)
              if is_registered_subclass(METRICS, m.get('type'), LesionSegMetric, scope)]
    if lesion:
        return _add_test_metric(cfg, dict(type='DumpSegCountsCsv', out_file=out_file,
                                          ignore_index=lesion[0].get('ignore_index', 255)))
    return _add_test_metric(cfg, dict(type='DumpPredictionsCsv', out_file=out_file))


def enable_mask_export(cfg: Config, out_dir: str) -> Config:
    """Make the test run also write each image's predicted mask to ``out_dir``, at the image's
    size and in its dataset's challenge format (:class:`~medtrans.evaluation.metrics.DumpSegMasks`).
    """
    return _add_test_metric(cfg, dict(type='DumpSegMasks', out_dir=out_dir))


def _test_metrics(cfg: Config) -> list:
    """The metric configs of the test evaluator, as a list."""
    evaluators = cfg.test_evaluator
    if isinstance(evaluators, dict) and 'metrics' in evaluators:
        evaluators = evaluators['metrics']
    return list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]


def _add_test_metric(cfg: Config, metric: dict) -> Config:
    cfg.test_evaluator = _test_metrics(cfg) + [metric]
    return cfg


def test_summary(runner, metrics: Dict, outputs: Optional[Dict[str, str]] = None) -> str:
    """What a test run measured and wrote, for the end of its log.

    Args:
        runner (Runner): The runner, after ``test()``.
        metrics (dict): What ``test()`` returned.
        outputs (dict[str, str], optional): Further outputs, by what they are (e.g. ``'masks'``:
            the ``--out-dir`` folder). Defaults to None.

    Returns:
        str: Lines: the checkpoint, the number of images and the metrics; the metrics JSON;
        the split records of the work dir (the tested split was checked against them, or
        written there); the further outputs.
    """
    dataset = runner.test_dataloader.dataset
    values = ' '.join(f'{key}={value:.4f}' if isinstance(value, numbers.Real) else
                      f'{key}={value}' for key, value in sorted(metrics.items()))
    lines = [f'Test of {runner.cfg.get("load_from") or "the initial weights"} on '
             f'{len(dataset)} images: {values or "no metrics"}']
    for hook in runner.hooks:
        if isinstance(hook, MetricsJsonHook):
            lines.append(f'Metrics: {osp.join(runner.work_dir, hook.out_dir, "test_latest.json")}')
    records = sorted(glob.glob(osp.join(runner.work_dir, SPLIT_RECORD_DIR, '*.json')))
    if records:
        lines.append('Split records (the tested split checked against them, or written): '
                     + ', '.join(records))
    lines += [f'{what}: {path}' for what, path in (outputs or {}).items()]
    return '\n'.join(lines)
