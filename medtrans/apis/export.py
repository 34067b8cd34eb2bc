"""Export a trained backbone as a plain weight file that a config's ``pretrained`` reads."""
import os.path as osp
from typing import Dict

import torch

from medtrans.engine import latest_checkpoint
from medtrans.models.utils import read_state_dict, save_state_dict

__all__ = ['export_backbone', 'BACKBONE_PARTS']

#: What can be exported -> the prefix of its keys in a model's state dict.
BACKBONE_PARTS = {'teacher': 'teacher.backbone.', 'student': 'backbone.'}


def export_backbone(checkpoint: str, out: str, part: str = 'teacher') -> Dict[str, torch.Tensor]:
    """Write the backbone of a training checkpoint as a medtrans backbone weight file.

    The file holds the backbone's own ``state_dict()`` (keys such as ``vit.cls_token`` or
    ``timm_model.conv1.weight``, buffers included), the format that
    :func:`medtrans.models.utils.read_backbone_weights` accepts, so a classification or
    segmentation config takes it as its backbone's ``pretrained`` and loads it with no missing
    or unexpected key. ``part='teacher'`` exports a DINO run's teacher (``teacher.backbone.*``),
    as the study does; ``'student'`` the model's ``backbone.*`` (DINO's student, or the
    backbone of any other medtrans model).

    Args:
        checkpoint (str): A checkpoint file, or a work dir (its latest checkpoint is used). Read
            with ``weights_only``: no code in it runs.
        out (str): Destination, ``.safetensors`` or ``.pth``; written atomically.
        part (str): ``'teacher'`` or ``'student'``. Defaults to ``'teacher'``.

    Returns:
        dict[str, torch.Tensor]: The exported state dict.

    Raises:
        FileNotFoundError: No checkpoint at ``checkpoint``.
        ValueError: An unknown ``part``, an ``out`` of another type, or a checkpoint without
            keys of that part.
    """
    if part not in BACKBONE_PARTS:
        raise ValueError(f'part must be one of {sorted(BACKBONE_PARTS)}, got {part!r}')
    if not out.endswith(('.safetensors', '.pth')):
        raise ValueError(f'{out}: the exported file must end in .safetensors or .pth')
    path = checkpoint
    if osp.isdir(checkpoint):
        path = latest_checkpoint(checkpoint)
        if path is None:
            raise FileNotFoundError(f'{checkpoint} holds no checkpoint (iter_*.pth, epoch_*.pth '
                                    'or a last_checkpoint pointer)')
    elif not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint not found: {checkpoint}; expected a checkpoint '
                                'file or the work dir of a run')
    state_dict = read_state_dict(path, field='checkpoint')
    prefix = BACKBONE_PARTS[part]
    weights = {key[len(prefix):]: value for key, value in state_dict.items()
               if key.startswith(prefix)}
    if not weights:
        hint = (' (a DINO checkpoint has them; for another model export the student)'
                if part == 'teacher' else '')
        raise ValueError(f'{path} holds no "{prefix}*" keys, so it has no {part} backbone to '
                         f'export{hint}; its keys start with '
                         f'{sorted({key.split(".")[0] for key in state_dict})}')
    save_state_dict(weights, out)
    return weights
