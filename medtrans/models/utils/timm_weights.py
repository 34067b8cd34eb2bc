"""Fetching the study's timm ImageNet weights once, on a connected machine, into local files."""
import os.path as osp
from typing import NamedTuple

import timm

from .checkpoint import save_state_dict
from .manifest import read_manifest, sha256_file, update_manifest

__all__ = ['STUDY_TIMM_WEIGHTS', 'SavedWeights', 'timm_weight_filename', 'save_timm_weights']

# The ImageNet-1k weights of the study, as timm names them (architecture.tag). ResNets and
# Inception-v3 take torchvision's original weights (`tv_in1k`), which the paper's code loaded
# through torchvision (ChrisMats/medical_transformers, defaults/bases.py); timm's default ResNet
# tags are its own later recipes (`a1_in1k`, `a1h_in1k`), stronger but not the study's.
STUDY_TIMM_WEIGHTS = (
    'deit_tiny_patch16_224.fb_in1k',
    'deit_small_patch16_224.fb_in1k',
    'deit_base_patch16_224.fb_in1k',
    'resnet18.tv_in1k',
    'resnet50.tv_in1k',
    'resnet152.tv_in1k',
    'inception_v3.tv_in1k',
    'swin_tiny_patch4_window7_224.ms_in1k',
)


class SavedWeights(NamedTuple):
    """What :func:`save_timm_weights` did for one model."""
    path: str
    sha256: str
    downloaded: bool


def timm_weight_filename(name: str) -> str:
    """File name of a timm model's weights: ``<architecture>.<tag>.safetensors``."""
    return f'{name}.safetensors'


def save_timm_weights(name: str, out_dir: str) -> SavedWeights:
    """Save a timm model's pretrained state dict to ``out_dir`` and list it in ``SHA256SUMS``.

    The weights come from ``timm.create_model(name, pretrained=True)`` (timm downloads them
    from the Hugging Face Hub), and the model's ``state_dict()``, classifier included, is
    written as ``<name>.safetensors``: exactly the layout the medtrans backbones read with
    ``pretrained=``. A file already present whose checksum matches the manifest is kept
    without downloading.

    Args:
        name (str): timm name with its pretrained tag, e.g. ``'resnet50.tv_in1k'``.
        out_dir (str): Folder of the weight files and their ``SHA256SUMS``.

    Returns:
        SavedWeights: The file, its SHA-256 and whether it was downloaded now.

    Raises:
        ValueError: ``name`` has no pretrained tag.
    """
    if '.' not in name:
        raise ValueError(f'{name!r}: give the pretrained tag too (e.g. "resnet50.tv_in1k"), so '
                         'that the file says which weights it holds')
    filename = timm_weight_filename(name)
    path = osp.join(out_dir, filename)
    listed = read_manifest(out_dir).get(filename)
    if listed is not None and osp.isfile(path) and sha256_file(path) == listed:
        return SavedWeights(path, listed, downloaded=False)
    model = timm.create_model(name, pretrained=True)
    save_state_dict(model.state_dict(), path)
    digest = sha256_file(path)
    update_manifest(out_dir, {filename: digest})
    return SavedWeights(path, digest, downloaded=True)
