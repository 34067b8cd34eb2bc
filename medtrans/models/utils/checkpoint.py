"""Reading and writing weight files without surprises: no code runs, nothing loads half-way."""
import io
import os.path as osp
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from medtrans.fileio import atomic_write_bytes, safe_load

from .manifest import verify_weight_file

__all__ = ['read_state_dict', 'read_backbone_weights', 'load_state_dict_exactly',
           'save_state_dict']

# Wrappers that common checkpoint producers put around the state dict: mmengine ('state_dict')
# and the official DeiT / DINO releases ('model').
_WRAPPER_KEYS = ('state_dict', 'model')
# Prefix of the backbone's keys in a medtrans model (an ImageClassifier, a segmentor, DINO's
# student), accepted in backbone weight files so that a filtered model state dict loads as is.
BACKBONE_PREFIX = 'backbone.'
# Keys listed per kind of problem in an error; the rest are counted.
_MAX_LISTED = 20


def read_state_dict(path: str, field: str = 'pretrained') -> Dict[str, torch.Tensor]:
    """Read a state dict from a local ``.pth`` or ``.safetensors`` file without running code.

    If a ``SHA256SUMS`` manifest beside the file lists it (as
    ``tools/misc/download_timm_weights.py`` writes), the file's checksum is verified first. The
    file is read with :func:`medtrans.fileio.safe_load` (``weights_only``), so a file holding
    pickled objects is refused with :class:`medtrans.fileio.UnsafeCheckpointError`. A state dict
    wrapped under ``'state_dict'`` or ``'model'`` is unwrapped.

    Args:
        path (str): Path of the checkpoint.
        field (str): Name of the config field that gave the path, quoted in errors.
            Defaults to ``'pretrained'``.

    Returns:
        dict[str, torch.Tensor]: The state dict, on the CPU.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: The checksum differs from the manifest's, or the file does not hold a
            mapping of names to tensors.
    """
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'`{field}` checkpoint not found: {path}. Set `{field}` to an existing local '
            '.pth or .safetensors file (nothing is downloaded), or to None for random init.')
    verify_weight_file(path)
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


def _listed(keys) -> str:
    keys = list(keys)
    shown = ', '.join(keys[:_MAX_LISTED])
    more = len(keys) - _MAX_LISTED
    return f'{shown} (and {more} more)' if more > 0 else shown


def _strip_common_prefix(state_dict: Dict[str, torch.Tensor], prefix: str, path: str,
                         field: str) -> Optional[Dict[str, torch.Tensor]]:
    """The state dict without ``prefix`` if every key has it, None if no key has it.

    Raises:
        ValueError: Some keys have the prefix and others do not.
    """
    others = [k for k in state_dict if not k.startswith(prefix)]
    if len(others) == len(state_dict):
        return None
    if others:
        raise ValueError(
            f'`{field}` file {path}: {len(state_dict) - len(others)} keys start with '
            f'"{prefix}" but these do not: {_listed(others)}. A backbone weight file holds the '
            f'backbone\'s keys only, all with or all without the prefix.')
    return {k[len(prefix):]: v for k, v in state_dict.items()}


def read_backbone_weights(path: str, own_prefix: str,
                          field: str = 'pretrained') -> Tuple[Dict[str, torch.Tensor], bool]:
    """Read a timm ImageNet file or a medtrans backbone weight file, keyed as the timm model.

    Two formats are accepted (both ``.safetensors`` or ``.pth``, read with
    :func:`read_state_dict`):

    - a **timm state dict**, keys as timm's model names them (``conv1.weight``, ``cls_token``,
      classifier included), e.g. from ``tools/misc/download_timm_weights.py``;
    - a **medtrans backbone weight file**: the ``state_dict()`` of a medtrans backbone, whose
      keys start with the attribute holding the timm model (``own_prefix``, e.g.
      ``timm_model.conv1.weight``, ``vit.cls_token``), each optionally prefixed by
      ``backbone.`` (the backbone's entries of a classifier, segmentor or DINO model).

    A prefix is removed when every key has it; a file where only some keys have one is an
    error naming the others (a classifier's head left in an export, say). Keys that fit the
    model otherwise are for :func:`load_state_dict_exactly` to report.

    Args:
        path (str): The weight file.
        own_prefix (str): Prefix of the backbone's own keys, with the dot (``'timm_model.'``).
        field (str): Config field that gave the path, for errors. Defaults to ``'pretrained'``.

    Returns:
        tuple[dict[str, torch.Tensor], bool]: The state dict in timm's key layout, and whether
        the file was a medtrans backbone weight file.

    Raises:
        ValueError: Some keys have a prefix and others do not.
    """
    state_dict = read_state_dict(path, field=field)
    state_dict = _strip_common_prefix(state_dict, BACKBONE_PREFIX, path, field) or state_dict
    own = _strip_common_prefix(state_dict, own_prefix, path, field)
    return (own, True) if own is not None else (state_dict, False)


def load_state_dict_exactly(module: nn.Module, state_dict: Dict[str, torch.Tensor],
                            source: str, target: Optional[str] = None) -> None:
    """Load a state dict that must match the module key for key and shape for shape.

    Unlike ``load_state_dict(strict=True)``, every kind of problem is reported at once, with
    the shapes (up to 20 keys listed per kind, the rest counted), and the message names where
    the weights came from.

    Args:
        module (nn.Module): The module to load into.
        state_dict (dict[str, torch.Tensor]): The weights, already adapted to the module.
        source (str): Where the weights came from, for error messages (e.g. the file path).
        target (str, optional): What the module is, for error messages. Defaults to the
            module's class name.

    Raises:
        ValueError: Keys are missing or unexpected, or shapes differ.
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [
        f'{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(own[k].shape)})'
        for k in sorted(state_dict) if k in own and state_dict[k].shape != own[k].shape
    ]
    problems = [
        f'{label}: {_listed(items)}'
        for label, items in (('missing keys', missing), ('unexpected keys', unexpected),
                             ('shape mismatches', mismatched)) if items
    ]
    if problems:
        raise ValueError(f'Weights from {source} do not fit {target or type(module).__name__} '
                         '(a file for another architecture?); ' + '; '.join(problems))
    module.load_state_dict(state_dict, strict=True)


def save_state_dict(state_dict: Dict[str, torch.Tensor], path: str) -> None:
    """Write a state dict atomically, as ``.safetensors`` or ``.pth`` by the file's suffix.

    Args:
        state_dict (dict[str, torch.Tensor]): The tensors (copied to the CPU, contiguous).
        path (str): Destination, ending in ``.safetensors`` or ``.pth``.
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    if path.endswith('.safetensors'):
        from safetensors.torch import save
        data = save(tensors)
    elif path.endswith('.pth'):
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        data = buffer.getvalue()
    else:
        raise ValueError(f'{path}: a weight file must end in .safetensors or .pth')
    atomic_write_bytes(path, data)
