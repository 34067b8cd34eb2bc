"""Assembling a run from a config: what ``tools/train.py`` and ``tools/test.py`` share."""
import copy
import glob
import importlib.util
import logging
import os
import os.path as osp
import re
import shutil
import types
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from medtrans.apis.registry_hints import with_registry_hints
from medtrans.datasets.splits import WORK_DIR_PLACEHOLDER
from medtrans.setup_env import register_all_modules
from medtrans.utils import export_local_rank, init_cpu_distributed, use_cpu_distributed

__all__ = [
    'prepare_config', 'build_runner', 'compile_modules', 'fill_work_dir', 'fill_placeholders',
    'enable_show_dir',
    'close_distributed', 'check_work_dir', 'final_metrics_summary', 'latest_checkpoint',
    'enable_predictions_csv'
]


MONITOR_PLACEHOLDER = '{monitor}'


def fill_placeholders(node, values: Dict[str, str]):
    """Replace placeholders (``'{work_dir}'``, ``'{monitor}'``) in every string of a config tree.

    Args:
        node: A config value; dicts are changed in place, lists and tuples rebuilt.
        values (dict[str, str]): Placeholder -> replacement.

    Returns:
        The filled value.
    """
    if isinstance(node, str):
        for placeholder, value in values.items():
            node = node.replace(placeholder, value)
        return node
    if isinstance(node, dict):
        for key, value in node.items():
            node[key] = fill_placeholders(value, values)
        return node
    if isinstance(node, list):
        return [fill_placeholders(value, values) for value in node]
    if isinstance(node, tuple):
        return tuple(fill_placeholders(value, values) for value in node)
    return node


def _uses(node, placeholder: str) -> bool:
    if isinstance(node, str):
        return placeholder in node
    if isinstance(node, dict):
        return any(_uses(value, placeholder) for value in node.values())
    if isinstance(node, (list, tuple)):
        return any(_uses(value, placeholder) for value in node)
    return False


def fill_work_dir(node, work_dir: str):
    """Replace the ``{work_dir}`` placeholder in every string of a config tree.

    Configs name run-specific files (such as a dataset's split record) relative to the run's
    work dir, which is only known once the command line is read.
    """
    return fill_placeholders(node, {WORK_DIR_PLACEHOLDER: work_dir})


def _enable_amp(cfg: Config) -> None:
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper in ('AmpOptimWrapper', 'GuardedAmpOptimWrapper'):
        print_log('AMP is already enabled in the config.', logger='current',
                  level=logging.WARNING)
        return
    amp_types = dict(OptimWrapper='AmpOptimWrapper', GuardedOptimWrapper='GuardedAmpOptimWrapper')
    if wrapper not in amp_types:
        raise ValueError(f'--amp needs optim_wrapper.type to be one of {sorted(amp_types)}, '
                         f'got "{wrapper}".')
    # The guard's settings (on_non_finite, max_consecutive_skips) carry over. bfloat16 on GPUs
    # and CPUs alike (a CPU has no float16 autocast); GPUs before Ampere have no bfloat16:
    # optim_wrapper.dtype=float16 there, with dynamic loss scaling.
    cfg.optim_wrapper.type = amp_types[wrapper]
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    cfg.optim_wrapper.setdefault('dtype', 'bfloat16')


def prepare_config(cfg: Config,
                   config_path: str,
                   work_dir: Optional[str] = None,
                   launcher: str = 'none',
                   amp: bool = False,
                   resume: bool = False,
                   load_from: Optional[str] = None,
                   auto_scale_lr: bool = False,
                   accumulate: Optional[int] = None,
                   compile: bool = False) -> Config:
    """Complete a loaded config the way mmseg's tools do, plus medtrans' conventions.

    Work dir priority: ``work_dir`` argument > ``cfg.work_dir`` > ``./work_dirs/<config name>``.
    The placeholders ``'{work_dir}'`` and ``'{monitor}'`` in the config's strings are replaced by
    the work dir and by ``cfg.monitor`` (the validation metric that picks the best checkpoint
    and drives the plateau schedule), so each is set once.
    Dataloader workers are capped at the CPU cores available to each process, and pinned
    memory is dropped on machines without a GPU.
    ``cfg.tensorboard = True`` adds a TensorBoard backend to the visualizer. On machines without
    CUDA, a distributed launcher starts a gloo group (see :mod:`medtrans.utils.compat`).

    Args:
        cfg (Config): The loaded config; changed in place and returned.
        config_path (str): Path the config was loaded from (names the default work dir).
        work_dir (str, optional): Work dir from the command line. Defaults to None.
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi'. Defaults to 'none'.
        amp (bool): Use automatic mixed precision, bfloat16 unless the config's
            ``optim_wrapper.dtype`` says otherwise. Defaults to False.
        resume (bool | str): True resumes from the latest checkpoint in the work dir
            (:func:`latest_checkpoint`); a path resumes from that checkpoint. Defaults to False.
        load_from (str, optional): Checkpoint to load the weights from. Defaults to None.
        auto_scale_lr (bool): Scale the LR linearly from the config's
            ``auto_scale_lr.base_batch_size`` to the run's total batch (processes x batch per
            process x ``accumulate``), as MMEngine's Runner does when ``auto_scale_lr.enable``.
            Defaults to False (the config's own setting).
        accumulate (int, optional): Accumulate the gradients of this many iterations per
            optimizer step (``optim_wrapper.accumulative_counts``), for a large batch on small
            GPUs. Defaults to None (the config's own setting).
        compile (bool): Set ``cfg.compile``: ``torch.compile`` the model's modules (see
            :func:`build_runner`), unless the compiler is missing (a C++ compiler on CPUs,
            Triton on GPUs): then the run goes on uncompiled and the log says why.
            Defaults to False.

    Returns:
        Config: ``cfg``.
    """
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])
    values = {WORK_DIR_PLACEHOLDER: cfg.work_dir}
    if isinstance(cfg.get('monitor'), str):
        values[MONITOR_PLACEHOLDER] = cfg.monitor
    for key in list(cfg.keys()):
        if key not in ('work_dir', 'monitor'):
            cfg[key] = fill_placeholders(cfg[key], values)
    if MONITOR_PLACEHOLDER not in values and _uses(cfg._cfg_dict, MONITOR_PLACEHOLDER):
        raise ValueError(f'The config uses the placeholder {MONITOR_PLACEHOLDER} but sets no '
                         "`monitor` (e.g. monitor = 'kappa': the validation metric that picks "
                         'the best checkpoint and drives the LR plateau schedule).')
    if amp:
        _enable_amp(cfg)
    if accumulate is not None:
        _enable_accumulation(cfg, accumulate)
    if compile:
        _enable_compile(cfg)
    if auto_scale_lr:
        if not cfg.get('auto_scale_lr', {}).get('base_batch_size'):
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config '
                             '(the batch size its LR is set for).')
        cfg.auto_scale_lr.enable = True
    if isinstance(resume, str):
        cfg.resume, cfg.load_from = True, resume
    elif resume:
        cfg.resume = True
        latest = latest_checkpoint(cfg.work_dir)
        if latest is not None:
            cfg.load_from = latest
    else:
        cfg.resume = False
    if load_from is not None:
        cfg.load_from = load_from
    _fit_loaders_to_machine(cfg)
    if cfg.get('tensorboard', False):
        backends = cfg.visualizer.setdefault('vis_backends', [dict(type='LocalVisBackend')])
        if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
            backends.append(dict(type='TensorboardVisBackend'))
    export_local_rank(launcher)
    if use_cpu_distributed(launcher):
        init_cpu_distributed(cfg)
    return cfg


def _enable_compile(cfg: Config) -> None:
    """Set ``cfg.compile`` (:func:`build_runner` then compiles the model's modules) when the
    compiler that torch's default backend needs is there; otherwise log why not."""
    if torch.cuda.is_available():
        missing = None if importlib.util.find_spec('triton') else 'Triton is not installed'
    else:
        missing = (None if any(shutil.which(c) for c in ('c++', 'g++', 'clang++'))
                   else 'no C++ compiler (c++, g++ or clang++) on PATH')
    if missing:
        print_log(f'--compile: skipped, the run goes on uncompiled: {missing}, which '
                  "torch.compile's default backend needs here.", logger='current',
                  level=logging.WARNING)
        return
    cfg.compile = cfg.get('compile') or True


def _enable_accumulation(cfg: Config, counts: int) -> None:
    """Accumulate gradients over ``counts`` iterations; MMEngine's LR scaling, which counts
    processes x batch only, then sees the accumulated batch through a base size divided by
    ``counts``."""
    if isinstance(counts, bool) or not isinstance(counts, int) or counts < 1:
        raise ValueError(f'--accumulate must be a positive integer, got {counts!r}.')
    hooks = [str(h.get('type', '')) for h in cfg.get('custom_hooks', [])]
    if counts > 1 and any(h.endswith('DINOHook') for h in hooks):
        raise ValueError('--accumulate: DINO updates its teacher every iteration '
                         '(DINOHook), which accumulation would turn into updates between '
                         'optimizer steps; train DINO without it.')
    cfg.optim_wrapper.accumulative_counts = counts
    scale = cfg.get('auto_scale_lr')
    if scale and scale.get('base_batch_size'):
        scale.base_batch_size = scale.base_batch_size / counts


def _fit_loaders_to_machine(cfg: Config) -> None:
    """Lower each dataloader's ``num_workers`` to the CPU cores available to each process
    (the configs name the study's machines' 8; a laptop has fewer), logging the change, and
    drop ``pin_memory`` on machines without a GPU, where it does nothing but warn."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    limit = max(1, (cores or 1) // int(os.environ.get('LOCAL_WORLD_SIZE', 1)))
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if loader and loader.get('num_workers', 0) > limit:
            print_log(f'{name}.num_workers {loader.num_workers} -> {limit}: the CPU cores '
                      'available to each process', logger='current')
            loader.num_workers = limit
        if loader and loader.get('pin_memory') and not torch.cuda.is_available():
            loader.pin_memory = False


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint a resumed run should continue from, or None.

    The highest-numbered ``iter_*.pth`` / ``epoch_*.pth`` in ``work_dir``: checkpoints are written
    atomically, so each one there is complete. MMEngine's ``last_checkpoint`` pointer is written
    in place after the checkpoint, so a kill can leave it empty or one checkpoint behind; it is
    used only when the work dir holds no numbered checkpoint (e.g. they were saved elsewhere).
    """
    numbered = []
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        match = re.fullmatch(r'(?:iter|epoch)_(\d+)\.pth', osp.basename(path))
        if match:
            numbered.append((int(match.group(1)), path))
    if numbered:
        return max(numbered)[1]
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            target = f.read().strip()
        if target and osp.isfile(target):
            return target
    return None


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


def final_metrics_summary(runner: Runner) -> str:
    """The last validation metrics of a finished run, then the best checkpoint and its score.

    The last line ends with the best score of the metric the checkpoint hook keeps
    (``save_best``), so scripts can read it from the end of the output.
    """
    scalars = runner.message_hub.log_scalars
    values = [f'{key[4:]}={scalars[key].current():.4f}' for key in sorted(scalars)
              if key.startswith('val/') and key[4:] not in ('time', 'data_time')]
    lines = ['Final validation: ' + (' '.join(values) if values else 'none (no validation ran)')]
    best_score = runner.message_hub.get_info('best_score')
    monitor = runner.cfg.get('default_hooks', {}).get('checkpoint', {}).get('save_best')
    if best_score is not None and isinstance(monitor, str):
        lines.append(f'Best checkpoint: {runner.message_hub.get_info("best_ckpt")}')
        lines.append(f'Best validation {monitor}: {best_score:.4f}')
    return '\n'.join(lines)


def build_runner(cfg: Config) -> Runner:
    """Build the MMEngine Runner (or ``cfg.runner_type`` from the registry) for a config.

    On top of MMEngine's construction:

    * ``randomness.deterministic=True`` makes PyTorch warn, not fail, on kernels without a
      deterministic version (set after the Runner's own switch, which would fail).
    * A type missing from a registry is reported with its config field and the closest
      registered names (:mod:`medtrans.apis.registry_hints`), at build time and when the run
      starts.
    * A run that resumes from a checkpoint skips weight initialisation: the checkpoint
      overwrites every weight, so ImageNet files named by ``pretrained`` are never read (and
      may have moved since the run started).
    * ``cfg.compile`` (True, or ``torch.compile`` keyword arguments) compiles the model's
      networks in place (:func:`compile_modules`) instead of MMEngine's whole
      ``model.train_step``. Compiled whole, the step takes in the optimizer wrapper, whose
      iteration counter and learning rate are Python numbers that dynamo guards on: it
      recompiled at every iteration of a warm-up (measured with ``TORCH_LOGS=recompiles``)
      until its cache limit, then ran eager.
    """
    register_all_modules(init_default_scope=False)
    deterministic = cfg.get('randomness', {}).get('deterministic', False)
    if deterministic:
        # cuBLAS reads its workspace setting when CUDA starts (the Runner moves the model).
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    if 'runner_type' in cfg:
        from medtrans.registry import RUNNERS
        runner = with_registry_hints(RUNNERS.build, cfg)(cfg)
    else:
        runner = with_registry_hints(Runner.from_cfg, cfg)(cfg)
    # Datasets, transforms, loops and metrics are built when a run starts.
    for name in ('train', 'val', 'test'):
        setattr(runner, name, with_registry_hints(getattr(runner, name), cfg))
    if deterministic:
        # The Runner's own switch calls use_deterministic_algorithms(True), which fails on the
        # CUDA kernels without a deterministic version (e.g. the backward of bilinear
        # upsampling); warn on those instead.
        torch.use_deterministic_algorithms(True, warn_only=True)
    if cfg.get('resume', False) and cfg.get('load_from'):
        _skip_weight_init(runner.model, cfg.load_from)
    compile_cfg = cfg.get('compile')
    if compile_cfg is True or isinstance(compile_cfg, dict):  # as MMEngine reads it
        runner.cfg.compile = None  # MMEngine's train() would compile the whole train_step
        names = compile_modules(runner.model, {} if compile_cfg is True else dict(compile_cfg))
        runner.logger.info(f'torch.compile: {", ".join(names)} compiled in place; the first '
                           'iterations will be slow.')
    return runner


def compile_modules(model: torch.nn.Module, options: Optional[dict] = None) -> List[str]:
    """``torch.compile`` the networks of a model in place: their ``forward`` and, on medtrans
    backbones, ``forward_embedding`` (what DINO and k-NN call).

    The model's top-level modules are compiled, inside ``ModuleDict`` / ``ModuleList``
    containers (DINO's teacher) too; the data preprocessor (lists of images of any size) and
    losses (``loss*`` modules; DINO's all-reduces its centre) stay eager, and so do the loss
    bookkeeping and the optimizer step. Methods are compiled rather than ``__call__``
    (``nn.Module.compile``) because mmseg's heads call ``self.forward`` directly. Parameter
    names, and so checkpoints, do not change; a deep copy's compiled methods are bound to the
    copy. Methods compiled before are left as they are.

    Args:
        model (nn.Module): The model, or a wrapper (DDP) around it.
        options (dict, optional): Keyword arguments of ``torch.compile``. Defaults to None.

    Returns:
        list[str]: The compiled methods, e.g. ``'backbone.forward'``.
    """
    model = model.module if is_model_wrapper(model) else model
    compiled = []

    def visit(name: str, module: torch.nn.Module) -> None:
        if isinstance(module, (torch.nn.ModuleDict, torch.nn.ModuleList)):
            for child_name, child in module.named_children():
                visit(f'{name}.{child_name}', child)
            return
        for method in ('forward', 'forward_embedding'):
            function = getattr(type(module), method, None)
            if callable(function) and method not in vars(module):  # not compiled yet
                # Bound as a method, so that a deep copy calls it on the copy's weights.
                setattr(module, method,
                        types.MethodType(torch.compile(function, **(options or {})), module))
                compiled.append(f'{name}.{method}')

    for name, child in model.named_children():
        if name != 'data_preprocessor' and not name.startswith('loss'):
            visit(name, child)
    return compiled


def _skip_weight_init(model: torch.nn.Module, checkpoint: str) -> None:
    model = model.module if is_model_wrapper(model) else model

    def init_weights() -> None:
        print_log(f'Resuming from {checkpoint}: weight initialisation skipped (the checkpoint '
                  'holds every weight).', logger='current')

    # The Runner calls model.init_weights() before loading the resume checkpoint.
    model.init_weights = init_weights


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
    lesion = [m for m in _test_metrics(cfg) if str(m.get('type', '')).endswith('LesionSegMetric')]
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


def close_distributed() -> None:
    """Destroy the process group; without it gloo runs sometimes abort at interpreter exit."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
