"""Multi-process runs on machines without CUDA (gloo), for every launcher MMEngine supports.

MMEngine's launchers call ``torch.cuda.set_device`` and its Runner passes ``device_ids`` to DDP,
both of which fail without CUDA. Initialising a gloo group first (through MMEngine's own launcher
code, so that torchrun, Slurm and Open MPI all work) makes MMEngine skip its own initialisation;
:class:`~medtrans.engine.runner.MedtransRunner` does it in ``setup_env`` and gives DDP
``device_ids=None``.
"""
import contextlib
import gc
import os
import sys
import traceback
from typing import Optional

import torch
import torch.distributed as dist

__all__ = ['use_cpu_distributed', 'init_cpu_distributed', 'export_local_rank', 'close_distributed']


def use_cpu_distributed(launcher: str) -> bool:
    """Whether a run with this launcher is a multi-process run on CPUs (gloo)."""
    return launcher != 'none' and not torch.cuda.is_available()


def init_cpu_distributed(launcher: str, dist_cfg: dict) -> None:
    """Start a gloo process group for ``launcher``, unless one is running.

    The group is started by MMEngine's :func:`mmengine.dist.init_dist`, which reads the
    launcher's environment (torchrun's ``RANK``/``LOCAL_RANK``, Slurm's ``SLURM_*``, Open MPI's
    ``OMPI_COMM_WORLD_*``), with ``torch.cuda.set_device`` made a no-op for the call (restored
    after it); ``dist_cfg``'s other options (e.g. ``timeout``) are kept, its backend becomes gloo.

    Args:
        launcher (str): 'pytorch', 'slurm' or 'mpi'.
        dist_cfg (dict): The config's ``env_cfg.dist_cfg``.
    """
    from mmengine.dist import init_dist

    if not dist.is_initialized():
        with _cuda_set_device_disabled():
            init_dist(launcher, **dict(dist_cfg, backend='gloo'))


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


def close_distributed() -> None:
    """Destroy the process group while the interpreter is fully alive.

    A group destroyed at interpreter exit can abort the process ("terminate called without an
    active exception", pytorch/pytorch#179291): gloo's threads still hold tensors. Destroying
    it is not enough while a finished Runner's reference cycles keep its DDP wrapper, and so
    the group, alive (a 2-process ``knn_eval.py`` aborted so in CI): they are collected first.
    Called in a ``finally`` while a run's exception propagates, it first clears the local
    variables of the finished frames of that exception's traceback, which hold the Runner too
    (the traceback still prints; its frames no longer show their variables). The caller must
    hold no reference to the Runner itself: the tools build and run it inside a function.
    """
    if dist.is_available() and dist.is_initialized():
        _clear_finished_frames(sys.exc_info()[1])
        gc.collect()
        dist.destroy_process_group()


def _clear_finished_frames(error: Optional[BaseException]) -> None:
    """Clear the local variables of the finished frames of ``error``'s traceback, and of the
    exceptions it was raised from or during (``traceback.clear_frames`` skips the frames still
    running: the ``finally`` that calls this and those above it)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__
