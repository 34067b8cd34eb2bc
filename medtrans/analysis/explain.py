"""What a classifier looks at: Grad-CAM of CNNs and CLS attention of ViTs (the study's Figure 4).

Grad-CAM is the maintained ``grad-cam`` package's (``pytorch_grad_cam.GradCAM``); this module
only points it at a medtrans classifier (its logits, its backbone's last feature stage) and
draws the maps, with the ViT's CLS-token attention (:mod:`medtrans.analysis.attention`) beside
them.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from medtrans.apis import model_inputs

from .attention import cls_attention_maps, keep_attention_mass

__all__ = ['grad_cam', 'cam_layer', 'heatmap_overlay', 'explain_images', 'titled',
           'title_height']


class _Logits(nn.Module):
    """An mmpretrain classifier as a function of its normalised inputs to its logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs, mode='tensor')


def cam_layer(model: nn.Module) -> nn.Module:
    """The backbone's last feature stage (timm's last ``feature_info`` module, e.g. ResNet's
    ``layer4``, Inception-v3's ``Mixed_7c``), where Grad-CAM is usually taken."""
    inner = getattr(model.backbone, 'inner', None)
    info = getattr(inner, 'feature_info', None)
    if info is None:
        raise TypeError(f'{type(model.backbone).__name__} is not a timm-backed CNN backbone '
                        'of medtrans; pass target_layer to grad_cam.')
    return inner.get_submodule(info[-1]['module'])


def grad_cam(model: nn.Module, inputs: torch.Tensor, target_layer: Optional[nn.Module] = None,
             classes: Optional[Sequence[int]] = None) -> np.ndarray:
    """Grad-CAM maps of a classifier, at the input size.

    Args:
        model (nn.Module): An mmpretrain ``ImageClassifier`` (from ``medtrans.apis.init_model``).
        inputs (Tensor): Normalised (B, 3, H, W) inputs on the model's device.
        target_layer (nn.Module, optional): Defaults to :func:`cam_layer`.
        classes (Sequence[int], optional): Class explained per image. Defaults to the predicted.

    Returns:
        np.ndarray: float32 (B, H, W) in [0, 1].
    """
    layer = target_layer if target_layer is not None else cam_layer(model)
    targets = None if classes is None else [ClassifierOutputTarget(c) for c in classes]
    with GradCAM(model=_Logits(model), target_layers=[layer]) as cam:
        return cam(input_tensor=inputs, targets=targets).astype(np.float32)


def heatmap_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """A map drawn over an image in the jet colour map.

    Args:
        image (np.ndarray): uint8 HxWx3 BGR (or HxW grey).
        heat (np.ndarray): hxw map, resized to the image (bilinear) and scaled to its maximum.
        alpha (float): Weight of the map. Defaults to 0.5.

    Returns:
        np.ndarray: uint8 HxWx3 BGR.
    """
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    heat = cv2.resize(heat.astype(np.float32), (image.shape[1], image.shape[0]),
                      interpolation=cv2.INTER_LINEAR)
    heat = heat / heat.max() if heat.max() > 0 else heat
    colour = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)
    return cv2.addWeighted(colour, alpha, image, 1 - alpha, 0)


def _mask_overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image darkened outside ``mask`` (hxw, resized to the image by nearest neighbour)."""
    mask = cv2.resize(mask.astype(np.uint8), (image.shape[1], image.shape[0]),
                      interpolation=cv2.INTER_NEAREST).astype(bool)
    out = (image * 0.25).astype(np.uint8)
    out[mask] = image[mask]
    return out


def title_height(width: int) -> int:
    """Height of the title band of a panel ``width`` pixels wide (:func:`titled`)."""
    return max(16, round(width / 10))


def titled(picture: np.ndarray, title: str) -> np.ndarray:
    """A panel with its title, black on white, in a band above it.

    Args:
        picture (np.ndarray): uint8 HxWx3 BGR.
        title (str): What the panel shows; its size is chosen to fit the width.

    Returns:
        np.ndarray: uint8 (H + :func:`title_height` (W)) x W x 3 BGR.
    """
    height, width = title_height(picture.shape[1]), picture.shape[1]
    band = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    (text_w, text_h), _ = cv2.getTextSize(title, font, 1.0, 1)
    scale = min(0.6 * height / text_h, 0.95 * width / text_w)
    (text_w, text_h), _ = cv2.getTextSize(title, font, scale, 1)
    origin = ((width - text_w) // 2, (height + text_h) // 2)
    cv2.putText(band, title, origin, font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, picture], axis=0)


def _display(batch_input: torch.Tensor) -> np.ndarray:
    """A pipeline output image (C, H, W) as uint8 HxWx3 BGR."""
    image = batch_input.permute(1, 2, 0).cpu().numpy().astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.shape[2] == 1 else image


def _name(model: nn.Module) -> str:
    """The backbone's architecture (timm's name, ``resnet50``), for a panel's title."""
    backbone = getattr(model, 'backbone', model)
    return str(getattr(backbone, 'arch', type(backbone).__name__))


def explain_images(images: Sequence[str], out_dir: str, cnn: Optional[nn.Module] = None,
                   vit: Optional[nn.Module] = None, mass: float = 0.5) -> List[str]:
    """Write the study's Figure 4 panels for each image: the image, Grad-CAM of the CNN, the
    ViT's CLS attention averaged over heads and the patches holding ``mass`` of it.

    Each model sees the image through its own config's test pipeline; the panels show the
    image as the first model given sees it. Per image ``<stem>.png`` holds the panels side by
    side and, with a ViT, ``<stem>_heads.png`` each head's attention. Each panel has its title
    above it (:func:`titled`): ``image``, ``Grad-CAM (<CNN architecture>)``, ``attention (mean of N
    heads)``, ``top <mass>% of attention``, and ``head 1`` ... ``head N``.

    Args:
        images (Sequence[str]): Image files.
        out_dir (str): Output folder (created).
        cnn (nn.Module, optional): A CNN classifier from ``medtrans.apis.init_model``.
        vit (nn.Module, optional): A ViT classifier (or any model whose backbone is a
            medtrans ViT) from ``medtrans.apis.init_model``.
        mass (float): Attention mass kept in the thresholded panel. Defaults to 0.5.

    Returns:
        list[str]: The files written.
    """
    if cnn is None and vit is None:
        raise ValueError('explain_images: give a CNN, a ViT or both.')
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for path in images:
        # Title -> panel, in the order shown.
        panels: Dict[str, np.ndarray] = {}
        heads = None
        if cnn is not None:
            inputs, batch = next(model_inputs(cnn, [path]))
            image = _display(batch['inputs'][0])
            panels['image'] = image
            panels[f'Grad-CAM ({_name(cnn)})'] = heatmap_overlay(image, grad_cam(cnn, inputs)[0])
        if vit is not None:
            inputs, batch = next(model_inputs(vit, [path]))
            image = _display(batch['inputs'][0])
            panels.setdefault('image', image)
            maps = cls_attention_maps(vit.backbone, inputs)[0].cpu()
            mean = maps.mean(dim=0)
            panels[f'attention (mean of {len(maps)} heads)'] = heatmap_overlay(image, mean.numpy())
            panels[f'top {mass:.0%} of attention'] = _mask_overlay(
                image, keep_attention_mass(mean, mass).numpy())
            heads = np.concatenate([titled(heatmap_overlay(image, m.numpy()), f'head {i}')
                                    for i, m in enumerate(maps, 1)], axis=1)
        height = panels['image'].shape[0]
        row = [titled(cv2.resize(p, (round(p.shape[1] * height / p.shape[0]), height)), title)
               for title, p in panels.items()]
        stem = osp.splitext(osp.basename(path))[0]
        for name, picture in ((stem, np.concatenate(row, axis=1)), (f'{stem}_heads', heads)):
            if picture is None:
                continue
            target = osp.join(out_dir, name + '.png')
            if not cv2.imwrite(target, picture):
                raise OSError(f'explain_images: could not write "{target}"')
            written.append(target)
    return written
