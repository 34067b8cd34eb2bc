"""Workarounds that make the pinned OpenMMLab stack work here, in one place.

Each function answers one upstream problem (see docs/stack.md for the error lines):

* :func:`install_mmcv_ops_stub` - ``import mmseg.models`` imports ``mmcv.ops``, which needs the
  compiled ``mmcv._ext``; mmcv-lite has none. A stand-in module lets the import succeed; calling
  any of its ops raises ``NotImplementedError`` naming the op. Nothing in medtrans uses them.
* :func:`install_safe_checkpoint_loader` - MMEngine loads local checkpoints with a bare
  ``torch.load``; on torch < 2.6 that unpickles arbitrary code. The replacement always passes
  ``weights_only=True`` and reads ``.safetensors`` files, so a checkpoint never runs code.
* :func:`init_cpu_distributed` - MMEngine's launchers call ``torch.cuda.set_device`` and the
  Runner passes ``device_ids`` to DDP, both of which fail without CUDA. Initialising a gloo group
  first (through MMEngine's own launcher code, so every launcher it supports works) makes MMEngine
  skip its own initialisation.
* :func:`export_local_rank` - the Runner reads ``LOCAL_RANK`` to wrap the model in DDP, which
  Open MPI's launcher does not set.

:func:`apply_compat` applies the import-time ones once; importing :mod:`medtrans` calls it.
"""
import contextlib
import importlib.machinery
import os
import os.path as osp
import sys
import types

import torch
import torch.distributed as dist

__all__ = [
    'apply_compat', 'install_mmcv_ops_stub', 'install_safe_checkpoint_loader', 'safe_load',
    'UnsafeCheckpointError', 'init_cpu_distributed', 'use_cpu_distributed', 'export_local_rank'
]


class _MissingOps(types.ModuleType):
    """Stand-in for ``mmcv._ext``: every attribute is an op that refuses to run."""

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)

        def _unavailable(*args, **kwargs):
            raise NotImplementedError(
                f'mmcv op "{name}" needs the compiled mmcv._ext, which mmcv-lite lacks. '
                'Install full mmcv (built with ops) to use it.')

        return _unavailable


def install_mmcv_ops_stub() -> None:
    """Put a stand-in for ``mmcv._ext`` in ``sys.modules`` if the real one is missing."""
    if 'mmcv._ext' in sys.modules:
        return
    try:
        importlib.import_module('mmcv._ext')
        return
    except ImportError:
        pass
    stub = _MissingOps('mmcv._ext')
    # The Runner's lazy imports call importlib.util.find_spec, which rejects __spec__ = None.
    stub.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', None)
    sys.modules['mmcv._ext'] = stub


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds pickled objects that ``weights_only`` loading refuses to build."""


def safe_load(filename: str, map_location=None) -> dict:
    """Load a checkpoint without executing code from it.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``, which builds only tensors and plain containers.

    Args:
        filename (str): Path of the checkpoint.
        map_location: As for :func:`torch.load`. Defaults to None.

    Returns:
        dict: The checkpoint (for safetensors, the state dict).

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file holds pickled objects other than tensors and containers.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint file not found: {filename}')
    if filename.endswith('.safetensors'):
        from safetensors.torch import load_file
        device = map_location if isinstance(map_location, str) else 'cpu'
        return load_file(filename, device=device)
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError or RuntimeError depending on version
        if 'weights_only' not in str(err) and 'Weights only' not in str(err):
            raise
        raise UnsafeCheckpointError(
            f'Refused to load {filename}: it holds pickled Python objects beyond tensors and '
            'plain containers, and unpickling them could run code. medtrans loads every '
            'checkpoint with weights_only=True. If you trust the file, re-save its tensors '
            '(torch.save(state_dict)) or convert it to .safetensors. Details: '
            f'{_unpickler_reason(err)}') from None


def _unpickler_reason(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reasons = [line for line in lines if 'Unsupported' in line or 'WeightsUnpickler' in line]
    return (reasons or lines or [type(err).__name__])[0]


def install_safe_checkpoint_loader() -> None:
    """Route MMEngine's local-file checkpoint loading (``load_from``, ``--resume``) to
    :func:`safe_load`."""
    from mmengine.runner import CheckpointLoader
    # MMEngine's own loader for plain paths is the one to replace; a new prefix would not do.
    CheckpointLoader.register_scheme(prefixes='', loader=_mmengine_local_loader, force=True)


def _mmengine_local_loader(filename, map_location):
    return safe_load(filename, map_location)


def use_cpu_distributed(launcher: str) -> bool:
    """Whether a run with this launcher is a multi-process run on CPUs (gloo)."""
    return launcher != 'none' and not torch.cuda.is_available()


def init_cpu_distributed(cfg) -> None:
    """Start a gloo process group for ``cfg.launcher`` and adapt ``cfg`` to CPU DDP.

    The group is started by MMEngine's :func:`mmengine.dist.init_dist`, which reads the
    launcher's environment (torchrun's ``RANK``/``LOCAL_RANK``, Slurm's ``SLURM_*``, Open MPI's
    ``OMPI_COMM_WORLD_*``), with ``torch.cuda.set_device`` made a no-op for the call; the
    config's ``env_cfg.dist_cfg`` options (e.g. ``timeout``) are kept, its backend becomes gloo.
    MMEngine then finds the group initialised and skips its CUDA-only setup. DDP gets
    ``device_ids=None`` and keeps the config's other wrapper options (``model_wrapper_cfg``, or
    the top-level ``find_unused_parameters``); SyncBN, which has no CPU kernel, becomes BN.

    Args:
        cfg (mmengine.Config): The run's config, with ``launcher`` set; changed in place.
    """
    from mmengine.dist import init_dist

    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}), backend='gloo')
    if not dist.is_initialized():
        with _cuda_set_device_disabled():
            init_dist(cfg.launcher, **dist_cfg)
    cfg.env_cfg = dict(cfg.get('env_cfg', {}), dist_cfg=dist_cfg)
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        wrapper = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                       find_unused_parameters=cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = dict(wrapper, device_ids=None)
    _replace_sync_bn(cfg.model)


@contextlib.contextmanager
def _cuda_set_device_disabled():
    original = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


def export_local_rank(launcher: str) -> None:
    """Set ``LOCAL_RANK`` from Open MPI's ``OMPI_COMM_WORLD_LOCAL_RANK`` for ``launcher='mpi'``.

    MMEngine's Runner reads ``LOCAL_RANK`` when it wraps the model in DDP, whatever the
    launcher; torchrun and MMEngine's Slurm setup export it, ``mpirun`` does not.
    """
    if launcher == 'mpi' and 'OMPI_COMM_WORLD_LOCAL_RANK' in os.environ:
        os.environ.setdefault('LOCAL_RANK', os.environ['OMPI_COMM_WORLD_LOCAL_RANK'])


def _replace_sync_bn(node) -> None:
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
        for value in node.values():
            _replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _replace_sync_bn(value)


_applied = False


def apply_compat() -> None:
    """Apply the import-time workarounds once (idempotent)."""
    global _applied
    if _applied:
        return
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    install_mmcv_ops_stub()
    install_safe_checkpoint_loader()
    _applied = True
