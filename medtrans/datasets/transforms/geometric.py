"""Geometric transforms that MMCV, MMSeg and MMPretrain lack."""
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from torchvision import tv_tensors
from torchvision.transforms import v2

from medtrans.registry import TRANSFORMS

__all__ = ['RandomElasticDeform']


@TRANSFORMS.register_module()
class RandomElasticDeform(BaseTransform):
    """Elastic deformation of an image and its segmentation maps by one random displacement
    field, as the study adds to its CSAW-S training pipeline.

    MMCV, MMSeg and MMPretrain have no elastic transform; torchvision's ``ElasticTransform``
    does it (a uniform random displacement per pixel, smoothed by a Gaussian of ``sigma``
    pixels and scaled by ``alpha``), and deforms an image and masks given together with the
    same field, masks by nearest neighbour. This wraps it for MMCV's numpy results dicts. The
    random draws follow NumPy's generator, like MMCV's transforms (seeded by MMEngine per
    worker), and leave torch's global generator untouched.

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
        alpha (float): Magnitude of the displacement, in pixels of a unit field. Defaults to 50
            (torchvision's default; the study gives no value).
        sigma (float): Smoothness of the displacement: the Gaussian's standard deviation in
            pixels. Defaults to 5 (torchvision's default).
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
        self._elastic = v2.ElasticTransform(
            alpha=alpha, sigma=sigma, interpolation=interpolation,
            fill={tv_tensors.Image: pad_val, tv_tensors.Mask: seg_pad_val})

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
        keys = list(results.get('seg_fields', []))
        image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(
            img if img.ndim == 3 else img[..., None])).permute(2, 0, 1))
        masks = [tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(results[key])))
                 for key in keys]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.randint(2 ** 31)))
            image, *masks = self._elastic((image, *masks))  # one field for all
        deformed = image.permute(1, 2, 0).numpy()
        results['img'] = deformed if img.ndim == 3 else deformed[..., 0]
        for key, mask in zip(keys, masks):
            results[key] = mask.numpy()
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prob={self.prob}, alpha={self.alpha}, '
                f"sigma={self.sigma}, interpolation='{self.interpolation}', "
                f'pad_val={self.pad_val}, seg_pad_val={self.seg_pad_val})')
