"""Hook that writes each evaluation's metrics to JSON files in the work dir."""
import json
import math
import numbers
import os.path as osp
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from medtrans.fileio import atomic_write_text
from medtrans.registry import HOOKS
from medtrans.utils.upstream import runner_load_from, train_loop_is_config

__all__ = ['MetricsJsonHook']


def _json_number(value: Any, key: str) -> Any:
    """Turn a metric value (number, 0-d array/tensor, or nested list of them) into JSON.

    JSON has no NaN or infinity, so a non-finite value is written as null.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_number(v, key) for v in value]
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    raise TypeError(f'Metric "{key}" is a {type(value).__name__}; MetricsJsonHook writes '
                    'numbers and lists of numbers only.')


@HOOKS.register_module()
class MetricsJsonHook(Hook):
    """Write the metrics of every validation and test to ``{work_dir}/metrics/``.

    After validation it writes ``val_{iter}.json`` (``iter``: training iterations done), after
    testing ``test_{timestamp}.json`` (the run's timestamp), and in both cases overwrites
    ``{mode}_latest.json`` with the same content. Each file is written atomically (temporary
    file, then :func:`os.replace`), by the main process only. Content::

        {"mode": "val" | "test", "iter": int, "epoch": int, "timestamp": str,
         "metrics": {name: float | null | [float, ...]},
         "checkpoint": str | null}    # test only: the checkpoint the run loaded

    ``iter`` and ``epoch`` are 0 when the run has no training loop (a val- or test-only run),
    as in MMEngine's logs. Non-finite metric values are written as null.

    Args:
        out_dir (str): Folder of the files; a relative path is taken inside the work dir.
            Defaults to 'metrics'.
    """

    def __init__(self, out_dir: str = 'metrics') -> None:
        self.out_dir = out_dir

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, Any]] = None) -> None:
        """Write the validation metrics.

        Args:
            runner (Runner): The runner.
            metrics (dict, optional): The evaluator's results. Nothing is written if None.
        """
        self._write(runner, 'val', metrics)

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, Any]] = None) -> None:
        """Write the test metrics.

        Args:
            runner (Runner): The runner.
            metrics (dict, optional): The evaluator's results. Nothing is written if None.
        """
        self._write(runner, 'test', metrics)

    def _write(self, runner, mode: str, metrics: Optional[Dict[str, Any]]) -> None:
        if metrics is None or not is_main_process():
            return
        iter_, epoch = self._progress(runner)
        record = dict(
            mode=mode,
            iter=iter_,
            epoch=epoch,
            timestamp=runner.timestamp,
            metrics={key: _json_number(value, key)
                     for key, value in metrics.items()})
        if mode == 'test':
            record['checkpoint'] = runner_load_from(runner)
        step = iter_ if mode == 'val' else runner.timestamp
        out_dir = osp.join(runner.work_dir, self.out_dir)
        text = json.dumps(record, indent=2) + '\n'
        atomic_write_text(osp.join(out_dir, f'{mode}_{step}.json'), text)
        atomic_write_text(osp.join(out_dir, f'{mode}_latest.json'), text)

    @staticmethod
    def _progress(runner) -> tuple:
        # Reading runner.iter builds a train loop that is still a config dict (and with it the
        # train dataloader), which a test-only run must not do.
        if train_loop_is_config(runner):
            return 0, 0
        return int(runner.iter), int(runner.epoch)
