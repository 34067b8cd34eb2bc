"""Reading weight files from outside (ImageNet checkpoints) and loading them without surprises."""
import os.path as osp
from typing import Dict

import torch
import torch.nn as nn

from medtrans.utils import safe_load

__all__ = ['read_state_dict', 'load_state_dict_exactly']

# Wrappers that common checkpoint producers put around the state dict: mmengine ('state_dict')
# and the official DeiT / DINO releases ('model').
_WRAPPER_KEYS = ('state_dict', 'model')


def read_state_dict(path: str, field: str = 'pretrained') -> Dict[str, torch.Tensor]:
    """Read a state dict from a local ``.pth`` or ``.safetensors`` file without running code.

    The file is read with :func:`medtrans.utils.safe_load` (``weights_only``), so a file holding
    pickled objects is refused with :class:`medtrans.utils.UnsafeCheckpointError`. A state dict
    wrapped under ``'state_dict'`` or ``'model'`` is unwrapped.

    Args:
        path (str): Path of the checkpoint.
        field (str): Name of the config field that gave the path, quoted in errors.
            Defaults to ``'pretrained'``.

    Returns:
        dict[str, torch.Tensor]: The state dict, on the CPU.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: The file does not hold a mapping of names to tensors.
    """
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'`{field}` checkpoint not found: {path}. Set `{field}` to an existing local '
            '.pth or .safetensors file (nothing is downloaded), or to None for random init.')
    checkpoint = safe_load(path, map_location='cpu')
    for key in _WRAPPER_KEYS:
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict):
        raise ValueError(f'`{field}` checkpoint {path} holds a {type(checkpoint).__name__}, '
                         'expected a state dict (a mapping of parameter names to tensors)')
    not_tensors = [k for k, v in checkpoint.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ValueError(f'`{field}` checkpoint {path} is not a state dict: entries '
                         f'{not_tensors[:5]} are not tensors')
    return dict(checkpoint)


def load_state_dict_exactly(module: nn.Module, state_dict: Dict[str, torch.Tensor],
                            source: str) -> None:
    """Load a state dict that must match the module key for key and shape for shape.

    Unlike ``load_state_dict(strict=True)``, every problem is reported at once, with the
    shapes, and the message names where the weights came from.

    Args:
        module (nn.Module): The module to load into.
        state_dict (dict[str, torch.Tensor]): The weights, already adapted to the module.
        source (str): Where the weights came from, for error messages (e.g. the file path).

    Raises:
        ValueError: Keys are missing or unexpected, or shapes differ.
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [
        f'{k} (checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)})'
        for k, v in state_dict.items() if k in own and v.shape != own[k].shape
    ]
    problems = [
        f'{label}: {", ".join(items)}'
        for label, items in (('missing keys', missing), ('unexpected keys', unexpected),
                             ('shape mismatches', mismatched)) if items
    ]
    if problems:
        raise ValueError(f'Weights from {source} do not fit {type(module).__name__}; '
                         + '; '.join(problems))
    module.load_state_dict(state_dict, strict=True)
