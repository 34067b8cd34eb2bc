"""Photometric transforms with torchvision's semantics on OpenCV's BGR images.

``ColorJitter`` replaces ``mmpretrain.ColorJitter``, whose hue step (MMCV's ``adjust_hue``)
does integer arithmetic on uint8 arrays and raises ``OverflowError`` under numpy 2 whenever the
sampled hue shift is negative. Here every step works on a float32 copy, so numpy 1 and 2 behave
alike.
"""
import numbers
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from medtrans.registry import TRANSFORMS

__all__ = ['ColorJitter']

# ITU-R BT.601 luma weights as torchvision writes them (0.2989 R + 0.587 G + 0.114 B), listed in
# the B, G, R order of the channels they multiply.
_BGR_LUMA = np.array([0.114, 0.587, 0.2989])

_Range = Union[float, Sequence[float]]


def _factor_range(value: _Range, name: str, center: float,
                  bound: Tuple[float, float]) -> Optional[Tuple[float, float]]:
    """Turn a jitter argument into the ``(min, max)`` range its factor is drawn from.

    Args:
        value (float | Sequence[float]): A number ``f`` meaning ``[center - f, center + f]``
            (the lower end raised to 0 for the multiplicative factors), or a ``(min, max)`` pair.
        name (str): The argument's name, for error messages.
        center (float): The factor that leaves the image unchanged.
        bound (tuple[float, float]): The allowed factors.

    Returns:
        tuple[float, float] | None: The range, or None when it holds only ``center`` (the step
        is then skipped and draws no random number, as in torchvision).
    """
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f'ColorJitter: {name}={value!r}; a single number must be '
                             'non-negative.')
        low, high = center - float(value), center + float(value)
        if center == 1.:
            low = max(low, 0.)
    elif (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
          and all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in value)):
        low, high = float(value[0]), float(value[1])
    else:
        raise TypeError(f'ColorJitter: {name}={value!r}; expected a non-negative number or a '
                        '(min, max) pair of numbers.')
    if not bound[0] <= low <= high <= bound[1]:
        raise ValueError(f'ColorJitter: {name} gives the range [{low}, {high}]; expected '
                         f'{bound[0]} <= min <= max <= {bound[1]}.')
    if low == high == center:
        return None
    return low, high


def _clip(img: np.ndarray) -> np.ndarray:
    """Clip a float32 image to [0, 255] in place (two OpenCV passes, faster than ``np.clip``)."""
    cv2.threshold(img, 255, 255, cv2.THRESH_TRUNC, dst=img)
    cv2.threshold(img, 0, 0, cv2.THRESH_TOZERO, dst=img)
    return img


# Each step takes a float32 BGR image with values in [0, 255], may modify it in place, and
# returns the adjusted image clipped to [0, 255].
def _adjust_brightness(img: np.ndarray, factor: float) -> np.ndarray:
    img *= factor
    return _clip(img)


def _adjust_contrast(img: np.ndarray, factor: float) -> np.ndarray:
    # Blend with the mean luminance of the whole image, from per-channel means (one pass).
    mean = float(np.dot(cv2.mean(img)[:3], _BGR_LUMA))
    img *= factor
    img += (1. - factor) * mean
    return _clip(img)


def _adjust_saturation(img: np.ndarray, factor: float) -> np.ndarray:
    # Blending each pixel with its own luminance is one 3x3 colour matrix,
    # factor * I + (1 - factor) * [1, 1, 1]^T luma, applied in a single OpenCV pass.
    matrix = factor * np.eye(3) + (1. - factor) * np.outer(np.ones(3), _BGR_LUMA)
    return _clip(cv2.transform(img, matrix))


def _adjust_hue(img: np.ndarray, factor: float) -> np.ndarray:
    # float32 HSV keeps H in degrees [0, 360) at full precision (uint8 HSV would quantise it to
    # 2-degree steps in [0, 180)). OpenCV's HSV2BGR is defined for H in [0, 360) and gives wrong
    # colours for negative H, so the shift is taken modulo 360 and the sum, in [0, 720), folded
    # back into that range.
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    hue = cv2.extractChannel(hsv, 0)
    hue += np.float32((factor * 360.) % 360.)
    hue -= (hue >= 360.) * np.float32(360.)
    cv2.insertChannel(hue, hsv, 0)
    # Hue rotation keeps each pixel's max and min, so the clip only removes rounding error.
    return _clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))


@TRANSFORMS.register_module()
class ColorJitter(BaseTransform):
    """Randomly change brightness, contrast, saturation and hue, as torchvision does.

    The semantics are those of ``torchvision.transforms.ColorJitter``: for each call, a factor is
    drawn uniformly from each enabled range, and the four adjustments are applied in a random
    order (each clipped to [0, 255]):

    * brightness ``b``: ``b * img``;
    * contrast ``c``: ``c * img + (1 - c) * mean(luminance(img))``;
    * saturation ``s``: ``s * img + (1 - s) * luminance(img)`` per pixel;
    * hue ``h``: the HSV hue rotated by ``h`` turns (``h * 360`` degrees, wrapping around).

    Luminance is ``0.2989 R + 0.587 G + 0.114 B`` (torchvision's weights). The image is the
    **BGR** uint8 array that OpenCV, MMCV's loaders and :class:`LoadImageStrict` produce, and the
    weights are applied to the channels in that order. Unlike torchvision on uint8 tensors, which
    truncates to integers after every step, the steps run on one float32 copy and the result is
    rounded once; outputs therefore differ from torchvision's by at most a level or two.

    Randomness comes from numpy's global generator (``np.random``), which MMEngine seeds in
    every data-loader worker, so a seeded run is reproducible. Only ``img`` changes: masks
    (``gt_seg_map`` and other ``seg_fields``) are left as they are, as a photometric transform
    must. To apply it with a probability, wrap it in MMCV's ``RandomApply``::

        dict(type='RandomApply', prob=0.8, transforms=[
            dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.1, hue=0.1)])

    Required Keys:

    - img (np.uint8, HxWx3, BGR)

    Modified Keys:

    - img

    Args:
        brightness (float | Sequence[float]): ``f`` draws the factor from
            ``[max(0, 1 - f), 1 + f]``; a ``(min, max)`` pair with ``0 <= min <= max`` gives the
            range directly. Defaults to 0. (unchanged).
        contrast (float | Sequence[float]): As ``brightness``. Defaults to 0. (unchanged).
        saturation (float | Sequence[float]): As ``brightness``; 0 gives a grey image.
            Defaults to 0. (unchanged).
        hue (float | Sequence[float]): ``f`` with ``0 <= f <= 0.5`` draws the shift (in turns)
            from ``[-f, f]``; a ``(min, max)`` pair with ``-0.5 <= min <= max <= 0.5`` gives the
            range directly. Defaults to 0. (unchanged).

    Raises:
        TypeError: An argument is neither a number nor a pair of numbers.
        ValueError: A negative number, or a range outside the bounds above; when called, an
            ``img`` that is not a uint8 HxWx3 array.
    """

    def __init__(self,
                 brightness: _Range = 0.,
                 contrast: _Range = 0.,
                 saturation: _Range = 0.,
                 hue: _Range = 0.) -> None:
        inf = float('inf')
        self.brightness = _factor_range(brightness, 'brightness', 1., (0., inf))
        self.contrast = _factor_range(contrast, 'contrast', 1., (0., inf))
        self.saturation = _factor_range(saturation, 'saturation', 1., (0., inf))
        self.hue = _factor_range(hue, 'hue', 0., (-.5, .5))
        self._steps = (
            (self.brightness, _adjust_brightness),
            (self.contrast, _adjust_contrast),
            (self.saturation, _adjust_saturation),
            (self.hue, _adjust_hue),
        )

    @cache_randomness
    def _sample(self) -> List[Tuple[int, float]]:
        """Draw the order of the four steps and the factor of each enabled one.

        Returns:
            list[tuple[int, float]]: ``(step index, factor)`` in the order of application, with
            0 brightness, 1 contrast, 2 saturation, 3 hue; disabled steps are left out.
        """
        order = np.random.permutation(len(self._steps))
        factors = [None if r is None else np.random.uniform(r[0], r[1]) for r, _ in self._steps]
        return [(int(i), float(factors[i])) for i in order if factors[i] is not None]

    def transform(self, results: Dict) -> Dict:
        """Jitter the colours of ``results['img']``.

        Args:
            results (dict): Must hold ``img``, a uint8 HxWx3 BGR array.

        Returns:
            dict: ``results`` with ``img`` replaced by the jittered uint8 image.
        """
        img = results['img']
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3
                and img.shape[2] == 3):
            described = (f'{img.dtype} array of shape {img.shape}'
                         if isinstance(img, np.ndarray) else type(img).__name__)
            raise ValueError(f"ColorJitter: results['img'] is a {described}; expected a uint8 "
                             f"HxWx3 BGR image (path: {results.get('img_path')}).")
        steps = self._sample()
        if not steps:
            return results
        out = img.astype(np.float32)
        for index, factor in steps:
            out = self._steps[index][1](out, factor)
        # Values are in [0, 255]: this rounds to nearest and converts in one pass.
        results['img'] = cv2.convertScaleAbs(out)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, '
                f'saturation={self.saturation}, hue={self.hue})')
