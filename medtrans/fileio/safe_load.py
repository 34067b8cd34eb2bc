"""Checkpoint loading that never executes code from the file.

MMEngine loads local checkpoints with a bare ``torch.load``; on torch < 2.6 that unpickles
arbitrary objects, so a downloaded file could run code. :func:`safe_load` always passes
``weights_only=True`` (and reads ``.safetensors`` with safetensors);
:func:`install_safe_checkpoint_loader` routes MMEngine's own loading (``load_from``,
``--resume``, ``mmengine.runner.load_checkpoint``) to it, and is applied by
:func:`medtrans.setup_env.register_all_modules`, not on import.
"""
import os.path as osp

import torch

from medtrans.utils.plain_state import from_plain

__all__ = [
    'safe_load', 'checkpoint_meta', 'UnsafeCheckpointError', 'install_safe_checkpoint_loader'
]


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


def checkpoint_meta(filename: str) -> dict:
    """The ``meta`` of a checkpoint (``epoch``, ``iter``...), read without loading its tensors.

    The file is memory-mapped (``mmap=True``), so only its small pickled part is read, and
    loaded ``weights_only``; values that :class:`~medtrans.engine.hooks.SafeResumeHook`
    encoded are decoded.
    """
    checkpoint = torch.load(
        osp.expanduser(str(filename)), map_location='cpu', weights_only=True, mmap=True)
    return from_plain(checkpoint.get('meta', {}))


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
