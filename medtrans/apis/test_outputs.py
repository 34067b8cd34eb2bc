"""What ``tools/test.py`` adds to a config for its outputs: overlays, per-image CSV, masks."""
import copy

from mmengine.config import Config

from medtrans.evaluation.metrics import LesionSegMetric
from medtrans.registry import METRICS, is_registered_subclass

__all__ = ['enable_show_dir', 'read_only_tested_split', 'enable_predictions_csv',
           'enable_mask_export']


def enable_show_dir(cfg: Config, show_dir: str) -> Config:
    """Make the test run save prediction overlays as PNG files under ``show_dir``.

    Files land in ``show_dir/vis_data/vis_image/`` (MMEngine's local visualizer backend).
    """
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise KeyError('--show-dir needs default_hooks.visualization '
                       "(e.g. dict(type='mmseg.SegVisualizationHook')) in the config.")
    hook['draw'] = True
    hook['interval'] = 1
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
