"""Geometric transforms that MMCV, MMSeg and MMPretrain lack."""
from typing import Optional

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from medtrans.registry import TRANSFORMS

__all__ = ['RandomElasticDeform']


@TRANSFORMS.register_module()
class RandomElasticDeform(BaseTransform):
    """Elastic deformation of an image and its segmentation maps by one random displacement
    field, as the study adds to its CSAW-S training pipeline.

    MMCV, MMSeg and MMPretrain have no elastic transform. The field is torchvision's
    ``ElasticTransform`` field (uniform noise in [-1, 1] per pixel and axis, smoothed by a
    Gaussian of ``sigma`` pixels over ``int(8 * sigma + 1)`` taps, reflected at the borders,
    times ``alpha`` over the image side, in grid units), drawn from NumPy's generator like
    MMCV's transforms (seeded by MMEngine per worker) and smoothed with OpenCV's separable blur:
    torchvision's dense 2-D kernel costs ``(8 sigma)^2`` multiply-adds per pixel (about 4
    GMAC per axis at 512x512 with sigma 16). torchvision's ``elastic`` kernel then moves the
    image (``interpolation``) and the maps (nearest neighbour) by the same field. A field of
    alpha ``a`` moves pixels by up to about ``a / 2`` pixels times the smoothed noise.

    Pixels pulled in from outside the image get ``pad_val`` in the image and ``seg_pad_val``
    (ignored by the loss, as in MMSeg's ``RandomRotate``) in the segmentation maps.

    Required Keys:

    - img
    - seg_fields and the maps they name (optional)

    Modified Keys:

    - img
    - the maps named in seg_fields

    Args:
        prob (float): Probability of deforming. Defaults to 0.5.
        alpha (float): Magnitude of the field. Defaults to 50 (torchvision's default; the
            study gives no value).
        sigma (float): Smoothness of the field: the Gaussian's standard deviation in pixels.
            Defaults to 5 (torchvision's default).
        interpolation (str): Interpolation of the image: ``'bilinear'`` or ``'nearest'``.
            Defaults to ``'bilinear'``.
        pad_val (float): Image value outside the source image. Defaults to 0.
        seg_pad_val (int): Segmentation value outside the source image. Defaults to 255.
    """

    def __init__(self,
                 prob: float = 0.5,
                 alpha: float = 50.0,
                 sigma: float = 5.0,
                 interpolation: str = 'bilinear',
                 pad_val: float = 0,
                 seg_pad_val: int = 255) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'RandomElasticDeform: prob must lie in [0, 1], got {prob!r}.')
        if alpha < 0 or sigma < 0:
            raise ValueError('RandomElasticDeform: alpha and sigma must be >= 0, got '
                             f'alpha={alpha!r}, sigma={sigma!r}.')
        if interpolation not in ('bilinear', 'nearest'):
            raise ValueError("RandomElasticDeform: interpolation must be 'bilinear' or "
                             f"'nearest', got {interpolation!r}.")
        self.prob = prob
        self.alpha = alpha
        self.sigma = sigma
        self.interpolation = interpolation
        self.pad_val = pad_val
        self.seg_pad_val = seg_pad_val

    def displacement(self, height: int, width: int) -> torch.Tensor:
        """Draw a field: (1, H, W, 2) float32, x then y displacement in grid units."""
        taps = int(8 * self.sigma + 1)
        taps += 1 - taps % 2  # odd, as torchvision makes it
        axes = []
        for side in (width, height):
            noise = (np.random.rand(height, width) * 2 - 1).astype(np.float32)
            if self.sigma > 0:
                noise = cv2.GaussianBlur(noise, (taps, taps), self.sigma,
                                         borderType=cv2.BORDER_REFLECT_101)
            axes.append(noise * (self.alpha / side))
        return torch.from_numpy(np.stack(axes, axis=-1))[None]

    def transform(self, results: dict) -> Optional[dict]:
        """Deform ``results['img']`` and every map in ``results['seg_fields']`` alike.

        Args:
            results (dict): Holds ``img`` (HxW or HxWxC) and optionally ``seg_fields``.

        Returns:
            dict: ``results`` with the deformed arrays (unchanged with probability
            ``1 - prob``).
        """
        if np.random.rand() >= self.prob:
            return results
        img = results['img']
        field = self.displacement(*img.shape[:2])
        image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(
            img if img.ndim == 3 else img[..., None])).permute(2, 0, 1))
        deformed = F.elastic(image, field, interpolation=self.interpolation,
                             fill=[float(self.pad_val)]).permute(1, 2, 0).numpy()
        results['img'] = deformed if img.ndim == 3 else deformed[..., 0]
        for key in results.get('seg_fields', []):
            mask = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(results[key])))
            results[key] = F.elastic(mask, field, fill=[float(self.seg_pad_val)]).numpy()
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prob={self.prob}, alpha={self.alpha}, '
                f"sigma={self.sigma}, interpolation='{self.interpolation}', "
                f'pad_val={self.pad_val}, seg_pad_val={self.seg_pad_val})')
