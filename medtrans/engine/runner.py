"""The Runner of medtrans configs: MMEngine's, with what medtrans runs need, by subclassing.

Every config's runtime base names it (``runner_type = 'medtrans.MedtransRunner'``), so
MMEngine's own entry points build it (``RUNNERS.build(cfg)``, as mmseg's and mmpretrain's
``tools/train.py`` do). ``Runner.from_cfg`` runs the same configs with MMEngine's plain
Runner, without the additions below.
"""
import glob
import importlib.util
import inspect
import os
import os.path as osp
import re
import shutil
import types
from typing import Dict, List, Optional, Set, Union

import torch
from mmengine.dist import is_distributed, is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from medtrans.fileio import (
    install_safe_checkpoint_loader,
    register_atomic_backend,
    remove_stale_temporaries,
)
from medtrans.models.utils import to_cpu_sync_batchnorm
from medtrans.registry import RUNNERS

from .distributed import export_local_rank, init_cpu_distributed, use_cpu_distributed
from .registry_hints import registry_hints

__all__ = ['MedtransRunner', 'compile_modules', 'latest_checkpoint', 'fit_loader_to_machine']


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


def fit_loader_to_machine(loader: dict, name: str = 'dataloader', logger=None) -> dict:
    """A dataloader config fitted to this machine.

    ``num_workers`` is lowered to the CPU cores available to each process (the configs name the
    study's machines' 8; a laptop has fewer: the process's CPU affinity divided by torchrun's
    ``LOCAL_WORLD_SIZE``), and ``pin_memory`` is dropped without a GPU, where it does nothing
    but warn. Changes are logged; nothing is raised.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    limit = max(1, (cores or 1) // int(os.environ.get('LOCAL_WORLD_SIZE', 1)))
    loader = dict(loader)
    if loader.get('num_workers', 0) > limit:
        if logger is not None:
            logger.info(f'{name}.num_workers {loader["num_workers"]} -> {limit}: the CPU cores '
                        'available to each process')
        loader['num_workers'] = limit
    if loader.get('pin_memory') and not torch.cuda.is_available():
        loader['pin_memory'] = False
    return loader


def compile_modules(model: torch.nn.Module, options: Optional[dict] = None) -> List[str]:
    """``torch.compile`` the networks of a model in place: their ``forward`` and, on medtrans
    backbones, ``forward_embedding`` (what DINO and k-NN call).

    The model's top-level modules are compiled, inside ``ModuleDict`` / ``ModuleList``
    containers (DINO's teacher) too; the data preprocessor (lists of images of any size) and
    losses (``loss*`` modules; DINO's all-reduces its centre) stay eager, and so do the loss
    bookkeeping and the optimizer step. Methods are compiled rather than ``__call__``
    (``nn.Module.compile``) because mmseg's heads call ``self.forward`` directly: assigning the
    compiled method to the module instance (PyTorch's documented pattern) is the one place
    medtrans sets an attribute on another library's objects. Parameter
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


def _missing_compiler() -> Optional[str]:
    """Why torch.compile's default backend cannot run here, or None."""
    if torch.cuda.is_available():
        return None if importlib.util.find_spec('triton') else 'Triton is not installed'
    if any(shutil.which(c) for c in ('c++', 'g++', 'clang++')):
        return None
    return 'no C++ compiler (c++, g++ or clang++) on PATH'


@RUNNERS.register_module()
class MedtransRunner(Runner):
    """MMEngine's Runner, with what medtrans runs need in the methods MMEngine offers for it.

    * **Safe loading**: MMEngine's checkpoint loading is made weights-only and the atomic
      checkpoint backend registered (:func:`medtrans.fileio.install_safe_checkpoint_loader`,
      :func:`medtrans.fileio.register_atomic_backend`) before anything is built.
    * **Resume** (``resume=True``): without ``load_from``, from the highest-numbered checkpoint
      of the work dir (:func:`latest_checkpoint`), not MMEngine's ``last_checkpoint`` pointer,
      which a kill can leave stale; with none there, the run starts anew. Weight initialisation
      is skipped: the checkpoint holds every weight, so ImageNet files named by ``pretrained``
      are never read (they may have moved).
    * ``setup_env``: a distributed launcher on a machine without CUDA starts a gloo group
      (:mod:`medtrans.engine.distributed`); ``wrap_model`` then gives DDP ``device_ids=None``
      and replaces SyncBN, which has no CPU kernel (nor does DDP accept it on a CPU module),
      with :class:`~medtrans.models.utils.CPUSyncBatchNorm` (every batch norm when the config
      sets ``sync_bn``): statistics of the whole distributed batch over gloo.
      ``setup_env`` also makes the timestamp unique in the process (``_2``, ``_3``... after
      the second): MMEngine names the logger, message hub and visualizer after it.
    * ``set_randomness``: ``randomness.deterministic=True`` warns, not fails, on kernels
      without a deterministic version (e.g. the CUDA backward of bilinear upsampling).
    * ``build_dataloader``: loaders fitted to the machine (:func:`fit_loader_to_machine`).
    * ``compile`` (True, or ``torch.compile`` keyword arguments): the model's networks are
      compiled in place at construction (:func:`compile_modules`), for training and testing,
      instead of MMEngine's whole ``train_step``. Compiled whole, the step takes in the optimizer
      wrapper, whose iteration counter and learning rate are Python numbers that dynamo guards
      on: it recompiled at every iteration of a warm-up (``TORCH_LOGS=recompiles``). Where the
      compiler is missing (a C++ compiler on CPUs, Triton on GPUs) the run goes on uncompiled
      and the log says why.
    * ``train`` / ``val`` / ``test``: a type missing from a registry is reported with its config
      field and the closest registered names (:mod:`medtrans.engine.registry_hints`); ``train``
      starts by removing (and logging) the temporary files that this run's interrupted atomic
      writes left in its work dir (:func:`medtrans.fileio.remove_stale_temporaries`), and ends
      by logging the last validation metrics and the best checkpoint
      (:meth:`final_metrics_summary`).

    Args: as :class:`mmengine.runner.Runner`.
    """

    def __init__(self, *args, **kwargs) -> None:
        install_safe_checkpoint_loader()
        register_atomic_backend()
        arguments = inspect.signature(Runner.__init__).bind(self, *args, **kwargs).arguments
        arguments.pop('self')
        if arguments.get('resume') and not arguments.get('load_from'):
            arguments['load_from'] = latest_checkpoint(osp.abspath(arguments['work_dir']))
            # Nothing to resume: a new run (MMEngine would look for its own pointer file).
            arguments['resume'] = arguments['load_from'] is not None
        #: The checkpoint this run resumes from, or None.
        self.resume_from = arguments['load_from'] if arguments.get('resume') else None
        cfg = arguments.get('cfg') or {}
        with registry_hints(cfg):
            super().__init__(**arguments)
        self._compile_modules(self.cfg.get('compile'))

    #: The timestamps of the runners this process built (see :meth:`setup_env`).
    _timestamps_taken: Set[str] = set()

    def setup_env(self, env_cfg: Dict) -> None:
        export_local_rank(self.launcher)
        if use_cpu_distributed(self.launcher):
            init_cpu_distributed(self.launcher, env_cfg.get('dist_cfg', {}))
        super().setup_env(env_cfg)
        # MMEngine names the run's logger, message hub, visualizer and log folder after its
        # timestamp (seconds): a second runner of the same config built within the same second
        # would log into the first one's file and start from its message hub. Every process
        # builds its runners in the same order, so the suffix agrees between ranks.
        timestamp, count = self._timestamp, 1
        while self._timestamp in MedtransRunner._timestamps_taken:
            count += 1
            self._timestamp = f'{timestamp}_{count}'
        MedtransRunner._timestamps_taken.add(self._timestamp)

    def set_randomness(self, seed, diff_rank_seed: bool = False,
                       deterministic: bool = False) -> None:
        if deterministic:
            # cuBLAS reads its workspace setting when its first handle is made (first matmul).
            os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        super().set_randomness(seed, diff_rank_seed, deterministic)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

    def wrap_model(self, model_wrapper_cfg: Optional[Dict], model: torch.nn.Module):
        """MMEngine's, and on CPU multi-process runs: DDP without ``device_ids``, and batch
        norms synchronised by :class:`~medtrans.models.utils.CPUSyncBatchNorm` (torch's
        SyncBatchNorm runs on GPUs only) where the GPU run would synchronise them: torch's
        SyncBN layers, and every batch norm when the config sets ``sync_bn``."""
        if self.distributed and not torch.cuda.is_available() and is_distributed():
            # Hidden from MMEngine, which would convert to torch's SyncBN; put back after, so
            # that the dumped config keeps it.
            sync_bn = self.cfg.pop('sync_bn', None)
            model = to_cpu_sync_batchnorm(model, every_batch_norm=sync_bn is not None)
            if model_wrapper_cfg is None:
                model_wrapper_cfg = dict(
                    type='MMDistributedDataParallel', broadcast_buffers=False,
                    find_unused_parameters=self.cfg.get('find_unused_parameters', False))
            model = super().wrap_model(dict(model_wrapper_cfg, device_ids=None), model)
            if sync_bn is not None:
                self.cfg['sync_bn'] = sync_bn
            return model
        return super().wrap_model(model_wrapper_cfg, model)

    @staticmethod
    def build_dataloader(dataloader: Union[DataLoader, Dict],
                         seed: Optional[int] = None,
                         diff_rank_seed: bool = False) -> DataLoader:
        if isinstance(dataloader, dict):
            dataset = dataloader.get('dataset', {})
            name = f"the {dataset.get('type', 'dataset')} loader" if isinstance(
                dataset, dict) else 'dataloader'
            dataloader = fit_loader_to_machine(dataloader, name,
                                               logger=MMLogger.get_current_instance())
        return Runner.build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)

    def _compile_modules(self, options) -> None:
        if not (options is True or isinstance(options, dict)):  # as MMEngine reads it
            return
        missing = _missing_compiler()
        if missing:
            self.logger.warning(f'compile: skipped, the run goes on uncompiled: {missing}, which '
                                "torch.compile's default backend needs here.")
            return
        names = compile_modules(self.model, {} if options is True else dict(options))
        self.logger.info(f'torch.compile: {", ".join(names)} compiled in place; the first '
                         'iterations will be slow.')

    def _maybe_compile(self, target: str) -> None:
        """Nothing: the model's networks were compiled at construction (see the class
        docstring), MMEngine's ``train()`` would compile the whole ``train_step`` here."""

    def _init_model_weights(self) -> None:
        if self.resume_from is not None:
            self.logger.info(f'Resuming from {self.resume_from}: weight initialisation skipped '
                             '(the checkpoint holds every weight).')
            return
        super()._init_model_weights()

    def train(self) -> torch.nn.Module:
        if is_main_process():
            removed = remove_stale_temporaries(self.work_dir)
            if removed:
                self.logger.warning(f'Removed {len(removed)} temporary file(s) that interrupted '
                                    f'writes of this run left: {", ".join(removed)}')
        with registry_hints(self.cfg):
            model = super().train()
        self.logger.info(self.final_metrics_summary())
        return model

    def val(self) -> dict:
        with registry_hints(self.cfg):
            return super().val()

    def test(self) -> dict:
        with registry_hints(self.cfg):
            return super().test()

    def final_metrics_summary(self) -> str:
        """The last validation metrics, then the best checkpoint and its score.

        The last line ends with the best score of the metric the checkpoint hook keeps
        (``save_best``), so scripts can read it from the end of the log.
        """
        scalars = self.message_hub.log_scalars
        values = [f'{key[4:]}={scalars[key].current():.4f}' for key in sorted(scalars)
                  if key.startswith('val/') and key[4:] not in ('time', 'data_time')]
        lines = ['Final validation: '
                 + (' '.join(values) if values else 'none (no validation ran)')]
        best_score = self.message_hub.get_info('best_score')
        keys = [key for hook in self.hooks if isinstance(hook, CheckpointHook)
                for key in getattr(hook, 'key_indicators', [])]
        if best_score is not None and len(keys) == 1 and keys[0] != 'auto':
            lines.append(f'Best checkpoint: {self.message_hub.get_info("best_ckpt")}')
            lines.append(f'Best validation {keys[0]}: {best_score:.4f}')
        return '\n'.join(lines)
