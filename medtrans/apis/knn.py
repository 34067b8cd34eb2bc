"""k-NN evaluation of frozen features from any classification config: ``tools/knn_eval.py``.

The config's test run becomes a :class:`~medtrans.engine.KNNTestLoop` (the memory
is the train split read with the test pipeline); the test set, its metric and the hooks stay
the config's, so the metrics JSON is written as ``tools/test.py`` writes it
(``{work_dir}/metrics/test_latest.json``). The weights come from one of:

* a checkpoint of a medtrans run (an MMEngine checkpoint: a dict with ``meta`` and
  ``state_dict``), loaded as ``load_from`` into the whole model;
* a backbone weight file (a plain state dict: a medtrans export such as
  ``tools/misc/export_backbone.py`` writes, or a timm ImageNet file), given to the backbone as
  its ``pretrained`` file;
* nothing: the config's own initialisation (its ImageNet file, or random init, seeded by the
  config's ``randomness``).
"""
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config

from medtrans.engine import KNNTestLoop
from medtrans.fileio import safe_load
from medtrans.registry import LOOPS, is_registered_subclass

from .run import build_runner, prepare_config

__all__ = ['prepare_knn_config', 'is_runner_checkpoint', 'knn_evaluate']


def prepare_knn_config(cfg: Config,
                       config_path: str,
                       work_dir: Optional[str] = None,
                       launcher: str = 'none',
                       k: Optional[int] = None,
                       temperature: Optional[float] = None) -> Config:
    """Complete a loaded config (:func:`~medtrans.apis.prepare_config`) for a k-NN test.

    A config whose ``test_cfg`` is not already a ``KNNTestLoop`` (or a subclass) gets one with
    the loop's defaults (k = 200, T = 0.07, the study's settings); ``k`` and ``temperature``
    override either. The work dir defaults to ``./work_dirs/knn/<config name>`` (not the config's
    training work dir, whose ``test_latest.json`` a k-NN test would overwrite).

    Args:
        cfg (Config): The loaded config; changed in place and returned.
        config_path (str): Path the config was loaded from.
        work_dir (str, optional): Work dir from the command line. Defaults to None.
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi'. Defaults to 'none'.
        k (int, optional): Number of neighbours. Defaults to None (the config's).
        temperature (float, optional): Vote temperature. Defaults to None (the config's).

    Returns:
        Config: ``cfg``.
    """
    if work_dir is None and cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(config_path))[0]
        work_dir = osp.join('./work_dirs', 'knn', name)
    prepare_config(cfg, config_path, work_dir=work_dir, launcher=launcher)
    test_cfg = cfg.get('test_cfg') or {}
    if not is_registered_subclass(LOOPS, test_cfg.get('type'), KNNTestLoop,
                                  cfg.get('default_scope', 'medtrans')):
        test_cfg = dict(type=KNNTestLoop.__name__, fp16=test_cfg.get('fp16', False))
    if k is not None:
        test_cfg['k'] = k
    if temperature is not None:
        test_cfg['temperature'] = temperature
    cfg.test_cfg = test_cfg
    return cfg


def is_runner_checkpoint(path: str) -> bool:
    """Whether a weight file is an MMEngine checkpoint of a whole model (else a state dict).

    The file is read without running code (``weights_only``; ``.safetensors`` files are always
    plain state dicts).

    Args:
        path (str): The file.

    Returns:
        bool: True for a dict holding ``meta`` and ``state_dict``, as the Runner saves.
    """
    if str(path).endswith('.safetensors'):
        if not osp.isfile(path):
            raise FileNotFoundError(f'Checkpoint file not found: {path}')
        return False
    checkpoint = safe_load(path, map_location='cpu')
    return isinstance(checkpoint, dict) and 'meta' in checkpoint and isinstance(
        checkpoint.get('state_dict'), dict)


def knn_evaluate(cfg: Config, checkpoint: Optional[str] = None) -> Dict[str, float]:
    """Run the k-NN test of a config prepared by :func:`prepare_knn_config`.

    Args:
        cfg (Config): The prepared config.
        checkpoint (str, optional): A medtrans run checkpoint, or a backbone weight file
            (see the module docstring). Defaults to None: the config's own initialisation.

    Returns:
        dict[str, float]: The test metrics (also in ``{work_dir}/metrics/test_latest.json``).

    Raises:
        ValueError: A backbone weight file for a backbone config without ``pretrained``.
    """
    if checkpoint is not None and is_runner_checkpoint(checkpoint):
        cfg.load_from = checkpoint
    elif checkpoint is not None:
        backbone = cfg.model.get('backbone', {})
        if 'pretrained' not in backbone:
            raise ValueError(
                f'{checkpoint} is a backbone weight file (a plain state dict), which medtrans '
                'backbones read from model.backbone.pretrained; the backbone of this config '
                f"({backbone.get('type')!r}) has no 'pretrained' field. Pass a checkpoint of "
                'the whole model instead.')
        backbone['pretrained'] = checkpoint
        cfg.load_from = None
    # Without load_from, KNNTestLoop initialises the weights (reads `pretrained`).
    return build_runner(cfg).test()
