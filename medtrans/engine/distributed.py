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
import traceback
from typing import Iterator, Optional

import torch
import torch.distributed as dist

__all__ = [
    'use_cpu_distributed', 'init_cpu_distributed', 'export_local_rank', 'close_distributed',
    'closing_process_group'
]


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


def close_distributed(error: Optional[BaseException] = None) -> None:
    """Destroy the process group while the interpreter is fully alive.

    A group destroyed at interpreter exit can abort the process ("terminate called without an
    active exception", pytorch/pytorch#179291): gloo's threads still hold tensors. Destroying
    it is not enough while a finished Runner's reference cycles keep its DDP wrapper, and so
    the group, alive (a 2-process ``knn_eval.py`` aborted so in CI): they are collected first.
    Where the run failed with ``error``, the finished frames of its traceback hold the Runner
    too: their local variables are cleared first (the traceback still prints; a post-mortem
    debugger sees those frames without their variables). The caller must hold no reference to
    the Runner itself; :func:`closing_process_group` is the way the tools call this.
    """
    if dist.is_available() and dist.is_initialized():
        if error is not None:
            _clear_finished_frames(error)
        gc.collect()
        dist.destroy_process_group()


@contextlib.contextmanager
def closing_process_group() -> Iterator[None]:
    """Run the block, then :func:`close_distributed`, with the block's exception if it raised.

    The Runner must be built and run inside a function called in the block, so that it is held
    only by that function's frame, gone or finished when the block ends::

        with closing_process_group():
            run_training(cfg)
    """
    try:
        yield
    except BaseException as error:
        close_distributed(error)
        raise
    close_distributed()


def _clear_finished_frames(error: BaseException) -> None:
    """Clear the local variables of the finished frames of ``error``'s traceback and of the
    exceptions linked to it (cause, context, an exception group's members).
    ``traceback.clear_frames`` skips the frames still running."""
    seen, pending = set(), [error]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        pending += [error.__cause__, error.__context__,
                    *getattr(error, 'exceptions', ())]
