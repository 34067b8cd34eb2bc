"""The command line's edits of a config (those mmseg's ``tools/train.py`` makes) and the refusal
to overwrite another run; what happens while a run lives belongs to
:class:`~medtrans.engine.MedtransRunner`."""
import glob
import inspect
import logging
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from medtrans.engine import latest_checkpoint
from medtrans.engine.hooks import DINOHook
from medtrans.engine.registry_hints import registry_hints
from medtrans.registry import HOOKS, LOOPS, is_registered_subclass, registered_class

__all__ = ['prepare_config', 'build_runner', 'check_work_dir', 'set_batch_size',
           'use_first_batches', 'VIS_BACKENDS']

#: ``--vis-backend`` names: MMEngine's visualisation backend and the package it needs.
VIS_BACKENDS: Dict[str, tuple] = {
    'tensorboard': ('TensorboardVisBackend', 'tensorboard'),
    'mlflow': ('MLflowVisBackend', 'mlflow'),
    'wandb': ('WandbVisBackend', 'wandb'),
}


def prepare_config(cfg: Config,
                   config_path: str,
                   work_dir: Optional[str] = None,
                   launcher: str = 'none',
                   amp: bool = False,
                   resume: Union[bool, str] = False,
                   load_from: Optional[str] = None,
                   auto_scale_lr: bool = False,
                   accumulate: Optional[int] = None,
                   compile: bool = False,
                   iters: Optional[int] = None,
                   batch_size: Optional[int] = None,
                   vis_backends: Sequence[str] = ()) -> Config:
    """Apply the command line to a loaded config, the way mmseg's tools do.

    Work dir priority: ``work_dir`` argument > ``cfg.work_dir`` > ``./work_dirs/<config name>``.

    Args:
        cfg (Config): The loaded config; changed in place and returned.
        config_path (str): Path the config was loaded from (names the default work dir).
        work_dir (str, optional): Work dir from the command line. Defaults to None.
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi'. Defaults to 'none'.
        amp (bool): Use automatic mixed precision, bfloat16 unless the config's
            ``optim_wrapper.dtype`` says otherwise. Defaults to False.
        resume (bool | str): True resumes from the newest checkpoint in the work dir
            (:func:`~medtrans.engine.latest_checkpoint`), or starts the run if there is none; a
            path resumes from that checkpoint. Defaults to False.
        load_from (str, optional): Checkpoint to load the weights from. Defaults to None.
        auto_scale_lr (bool): Scale the LR linearly from the config's
            ``auto_scale_lr.base_batch_size`` to the run's total batch (processes x batch per
            process x ``accumulate``), as MMEngine's Runner does when ``auto_scale_lr.enable``.
            Defaults to False (the config's own setting).
        accumulate (int, optional): Accumulate the gradients of this many iterations per
            optimizer step (``optim_wrapper.accumulative_counts``). Defaults to None.
        compile (bool): Set ``cfg.compile`` (see :class:`~medtrans.engine.MedtransRunner`).
            Defaults to False.
        iters (int, optional): Train this many iterations: ``train_cfg.max_iters``, which every
            iteration-based loop takes (:class:`~medtrans.engine.IterBasedEpochsTrainLoop`'s
            instead of its epochs). Defaults to None (the config's length).
        batch_size (int, optional): Images per training batch in each process
            (``train_dataloader.batch_size``, :func:`set_batch_size`). Defaults to None.
        vis_backends (Sequence[str]): Also log to these (:data:`VIS_BACKENDS`: 'tensorboard',
            'mlflow', 'wandb'), added to ``visualizer.vis_backends``. Defaults to ().

    Returns:
        Config: ``cfg``.
    """
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])
    if amp:
        _enable_amp(cfg)
    if accumulate is not None:
        _enable_accumulation(cfg, accumulate)
    if compile:
        cfg.compile = cfg.get('compile') or True
    if auto_scale_lr:
        if not cfg.get('auto_scale_lr', {}).get('base_batch_size'):
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config '
                             '(the batch size its LR is set for).')
        cfg.auto_scale_lr.enable = True
    if isinstance(resume, str):
        cfg.resume, cfg.load_from = True, resume
    elif resume:
        # The newest checkpoint of this run, over the config's own load_from (the weights a new
        # run starts from); a run that never saved one starts anew.
        latest = latest_checkpoint(cfg.work_dir)
        cfg.resume, cfg.load_from = latest is not None, latest or cfg.get('load_from')
        if latest is None:
            print_log(f'--resume: no checkpoint in {cfg.work_dir}; starting the run.', 'current')
    else:
        cfg.resume = False
    if load_from is not None:
        cfg.load_from = load_from
    if iters is not None:
        _set_train_length(cfg, iters)
    if batch_size is not None:
        set_batch_size(cfg, batch_size, ['train_dataloader'])
    for name in vis_backends:
        _add_vis_backend(cfg, name, config_path)
    return cfg


def _positive(value, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{option} must be a positive integer, got {value!r}.')
    return value


def _set_train_length(cfg: Config, iters: int) -> None:
    """``train_cfg.max_iters``, where the loop takes it; a loop counted in epochs only is
    refused."""
    _positive(iters, '--iters')
    loop = cfg.get('train_cfg')
    if not loop:
        raise ValueError('--iters: the config has no train_cfg, so nothing trains.')
    # MMEngine's choice for a train_cfg without a type.
    loop_type = loop.get('type') or ('EpochBasedTrainLoop' if loop.get('by_epoch')
                                     else 'IterBasedTrainLoop')
    found = registered_class(LOOPS, loop_type, cfg.get('default_scope', 'medtrans'))
    if found is None or 'max_iters' not in inspect.signature(found.__init__).parameters:
        raise ValueError(
            f"--iters: train_cfg.type {loop_type!r} counts whole epochs and takes no max_iters; "
            'train fewer epochs with --cfg-options train_cfg.max_epochs=N, or use an '
            "iteration-based loop ('ResumableIterBasedTrainLoop', or "
            "'IterBasedEpochsTrainLoop' for a length in epochs).")
    loop.pop('by_epoch', None)
    loop['type'] = loop_type
    loop['max_iters'] = iters


def set_batch_size(cfg: Config, batch_size: int, loaders: Sequence[str]) -> Config:
    """Set the batch size of each dataloader in ``loaders`` (``<name>.batch_size``: images per
    batch in each process).

    For ``train_dataloader`` that changes the run's total batch (processes x batch x
    ``accumulative_counts``). The LR follows it only where ``auto_scale_lr.enable`` is set (the
    DINO configs, DINO's linear scaling rule; ``--auto-scale-lr``): a recipe's LR is set for its
    total batch.

    Raises:
        ValueError: Not a positive integer, or a dataloader the config does not have.
    """
    _positive(batch_size, '--batch-size')
    for name in loaders:
        if not isinstance(cfg.get(name), dict):
            raise ValueError(f'--batch-size: the config has no {name}.')
        cfg[name]['batch_size'] = batch_size
    return cfg


def _leaf_datasets(dataset: dict) -> List[dict]:
    if isinstance(dataset.get('datasets'), (list, tuple)):
        return [leaf for inner in dataset['datasets'] for leaf in _leaf_datasets(inner)]
    if isinstance(dataset.get('dataset'), dict):
        return _leaf_datasets(dataset['dataset'])
    return [dataset]


def use_first_batches(cfg: Config, iters: int, loaders: Sequence[str],
                      batch_size: Optional[int] = None) -> Config:
    """Read only the first ``iters`` batches of each dataset in ``loaders`` (MMEngine's
    ``indices`` of the datasets inside any wrapper: the first ``iters`` x batch size samples).

    Args:
        cfg (Config): The config, changed in place and returned.
        iters (int): Batches to keep.
        loaders (Sequence[str]): Dataloaders, e.g. ``['test_dataloader']``.
        batch_size (int, optional): The batch size the samples are read in. Defaults to None
            (each loader's own).

    Raises:
        ValueError: Not a positive integer, or a dataloader the config does not have.
    """
    _positive(iters, '--iters')
    for name in loaders:
        loader = cfg.get(name)
        if not isinstance(loader, dict) or not isinstance(loader.get('dataset'), dict):
            raise ValueError(f'--iters: the config has no {name} with a dataset.')
        for dataset in _leaf_datasets(loader['dataset']):
            dataset['indices'] = iters * (batch_size or loader.get('batch_size') or 1)
    print_log(f'--iters {iters}: reading the first {iters} batch(es) of '
              f'{" and ".join(loaders)} only', 'current', logging.WARNING)
    return cfg


def _add_vis_backend(cfg: Config, name: str, config_path: str) -> None:
    """Add ``name``'s MMEngine backend to ``visualizer.vis_backends`` (the config's visualizer,
    or MMEngine's default one, which logs to local files). MLflow logs where
    ``MLFLOW_TRACKING_URI`` says, else to a SQLite file in the work dir (``mlflow.db``, the
    config as its artifact in ``mlflow_artifacts/``); Weights & Biases to its project named
    after the config (its local files in the run's log dir, MMEngine's default)."""
    if name not in VIS_BACKENDS:
        raise ValueError(f'--vis-backend {name!r}: expected one of {", ".join(VIS_BACKENDS)}.')
    backend_type = VIS_BACKENDS[name][0]
    visualizer = cfg.get('visualizer') or dict(
        type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    backends = list(visualizer.get('vis_backends') or [])
    if any(str(b.get('type')).split('.')[-1] == backend_type for b in backends):
        return
    experiment = osp.splitext(osp.basename(config_path))[0]
    work_dir = osp.abspath(cfg.work_dir)
    backend = dict(type=backend_type)
    if name == 'mlflow':
        uri = os.environ.get('MLFLOW_TRACKING_URI')
        # MMEngine's default is a file store in the log dir, which MLflow 3 refuses.
        backend.update(exp_name=experiment, tracking_uri=uri or
                       'sqlite:///' + osp.join(work_dir, 'mlflow.db'))
        if not uri:
            # MMEngine would copy the work dir's files into the artifacts, which lie in it.
            backend.update(artifact_location=osp.join(work_dir, 'mlflow_artifacts'),
                           artifact_suffix=())
    elif name == 'wandb':
        backend.update(init_kwargs=dict(project=experiment))
    visualizer = dict(visualizer, vis_backends=backends + [backend])
    cfg.visualizer = visualizer


def _enable_amp(cfg: Config) -> None:
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper in ('AmpOptimWrapper', 'GuardedAmpOptimWrapper'):
        print_log('AMP is already enabled in the config.', 'current', logging.WARNING)
        return
    amp_types = dict(OptimWrapper='AmpOptimWrapper', GuardedOptimWrapper='GuardedAmpOptimWrapper')
    if wrapper not in amp_types:
        raise ValueError(f'--amp needs optim_wrapper.type to be one of {sorted(amp_types)}, '
                         f'got "{wrapper}".')
    # The guard's settings carry over. bfloat16 on GPUs and CPUs alike (a CPU has no float16
    # autocast); GPUs before Ampere have no bfloat16: optim_wrapper.dtype=float16 there.
    cfg.optim_wrapper.type = amp_types[wrapper]
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    cfg.optim_wrapper.setdefault('dtype', 'bfloat16')


def _enable_accumulation(cfg: Config, counts: int) -> None:
    """Accumulate gradients over ``counts`` iterations; MMEngine's LR scaling, which counts
    processes x batch only, then sees the accumulated batch through a base size divided by
    ``counts``."""
    if isinstance(counts, bool) or not isinstance(counts, int) or counts < 1:
        raise ValueError(f'--accumulate must be a positive integer, got {counts!r}.')
    scope = cfg.get('default_scope', 'medtrans')
    if counts > 1 and any(is_registered_subclass(HOOKS, hook.get('type'), DINOHook, scope)
                          for hook in cfg.get('custom_hooks', [])):
        raise ValueError('--accumulate: DINO updates its teacher every iteration '
                         '(DINOHook), which accumulation would turn into updates between '
                         'optimizer steps; train DINO without it.')
    cfg.optim_wrapper.accumulative_counts = counts
    scale = cfg.get('auto_scale_lr')
    if scale and scale.get('base_batch_size'):
        scale.base_batch_size = scale.base_batch_size / counts


def build_runner(cfg: Config) -> Runner:
    """The Runner a config names (``runner_type``, as mmseg's and mmpretrain's tools build it),
    or MMEngine's; a type missing from a registry is reported with the closest names."""
    with registry_hints(cfg):
        return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def check_work_dir(cfg: Config) -> None:
    """Refuse to start a new training run in a work dir that holds another run's checkpoints.

    Raises:
        FileExistsError: ``cfg.work_dir`` holds checkpoints and the run does not resume.
    """
    if cfg.get('resume', False):
        return
    found = sorted(glob.glob(osp.join(cfg.work_dir, '*.pth')))
    if osp.exists(osp.join(cfg.work_dir, 'last_checkpoint')):
        found.append('last_checkpoint')
    if found:
        names = ', '.join(osp.basename(f) for f in found[:5])
        raise FileExistsError(
            f'Work dir {cfg.work_dir} already holds checkpoints of another run ({names}); '
            'a new run would overwrite them. Resume it with --resume, choose another '
            '--work-dir, or move the old files away.')
