"""The command line's edits of a config (those mmseg's ``tools/train.py`` makes) and the refusal
to overwrite another run; what happens while a run lives belongs to
:class:`~medtrans.engine.MedtransRunner`."""
import glob
import logging
import os.path as osp
from typing import Optional, Union

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from medtrans.engine import latest_checkpoint
from medtrans.engine.hooks import DINOHook
from medtrans.engine.registry_hints import registry_hints
from medtrans.registry import HOOKS, is_registered_subclass

__all__ = ['prepare_config', 'build_runner', 'check_work_dir']


def prepare_config(cfg: Config,
                   config_path: str,
                   work_dir: Optional[str] = None,
                   launcher: str = 'none',
                   amp: bool = False,
                   resume: Union[bool, str] = False,
                   load_from: Optional[str] = None,
                   auto_scale_lr: bool = False,
                   accumulate: Optional[int] = None,
                   compile: bool = False) -> Config:
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
    return cfg


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
