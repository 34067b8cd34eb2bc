"""Reading grey DICOM images (mammograms) as 8-bit pixels, by one documented rule.

:func:`read_dicom_uint8` is the one conversion used everywhere: by ``LoadDicom`` in pipelines
and by ``tools/dataset_converters/cbis_ddsm_to_png.py``, so that a converted PNG holds exactly
the pixels the pipeline would have decoded from the DICOM file.

The rule, in order:

1. The stored values (8 or 16 bits, signed or unsigned, one frame, one sample per pixel) go
   through the Modality LUT (``RescaleSlope``/``RescaleIntercept`` or a Modality LUT Sequence,
   by :func:`pydicom.pixels.apply_modality_lut`).
2. With ``WindowCenter`` and ``WindowWidth`` (the first pair when several are given), the
   DICOM VOI window maps them onto [0, 1]: ``LINEAR`` (the default function, PS3.3
   C.11.2.1.2.1) ``clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1)``, or ``LINEAR_EXACT``
   ``clip((x - c) / w + 0.5, 0, 1)``. Without them, the image's own range does:
   ``(x - min) / (max - min)`` (0 everywhere for a constant image).
3. ``MONOCHROME1`` images (where a higher value is darker) are inverted, ``1 - v``, so that
   dense tissue is bright in every output.
4. 8 bits: ``floor(255 * v + 0.5)``.
"""
import os.path as osp
from collections.abc import Sequence
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform

from medtrans.registry import TRANSFORMS

__all__ = ['read_dicom_uint8', 'LoadDicom']

_EXPECTED = ('expected a DICOM file holding one grey (MONOCHROME1/2) frame of 8- or 16-bit '
             'pixels')


def _first(value) -> float:
    """The first value of a possibly multi-valued DICOM number, as a float."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if not value:
            raise ValueError('an empty multi-valued number')
        value = value[0]
    return float(value)


def _check_pixel_module(ds) -> None:
    """Refuse what the rule does not cover, with the attribute at fault."""
    if 'PixelData' not in ds:
        raise ValueError('no (7FE0,0010) Pixel Data')
    photometric = ds.get('PhotometricInterpretation')
    if photometric not in ('MONOCHROME1', 'MONOCHROME2'):
        raise ValueError(f'(0028,0004) Photometric Interpretation is {photometric!r}, '
                         'expected MONOCHROME1 or MONOCHROME2')
    samples = ds.get('SamplesPerPixel')
    if samples != 1:
        raise ValueError(f'(0028,0002) Samples per Pixel is {samples!r}, expected 1')
    bits = ds.get('BitsAllocated')
    if bits not in (8, 16):
        raise ValueError(f'(0028,0100) Bits Allocated is {bits!r}, expected 8 or 16')
    frames = ds.get('NumberOfFrames', 1)
    if frames is None or int(frames) != 1:
        raise ValueError(f'(0028,0008) Number of Frames is {frames!r}, expected 1')
    rows, cols = ds.get('Rows'), ds.get('Columns')
    if not (isinstance(rows, int) and isinstance(cols, int) and rows > 0 and cols > 0):
        raise ValueError(f'the image is {rows!r}x{cols!r} (Rows x Columns), expected positive '
                         'sizes')
    if not ds.file_meta.TransferSyntaxUID.is_compressed:
        # pydicom accepts surplus pixel bytes (it reads them as extra frames or drops them):
        # here the size must be exact, so that a damaged size attribute cannot pass.
        expected = rows * cols * bits // 8
        if len(ds.PixelData) not in (expected, expected + expected % 2):
            raise ValueError(f'Pixel Data holds {len(ds.PixelData)} bytes, expected '
                             f'{expected} for {rows}x{cols} pixels of {bits} bits')


def _unit_range(ds, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Steps 2 and 3 of the rule: ``values`` onto [0, 1], MONOCHROME1 inverted.

    Args:
        ds (pydicom.Dataset): The image's dataset.
        values (np.ndarray): Modality LUT output (float64) of every possible stored value.
        present (np.ndarray): Which of them occur in the image (for the min-max range).
    """
    has_center, has_width = 'WindowCenter' in ds, 'WindowWidth' in ds
    if has_center != has_width:
        raise ValueError('only one of (0028,1050) Window Center and (0028,1051) Window Width '
                         'is present, expected both or neither')
    if has_center:
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        function = str(ds.get('VOILUTFunction') or 'LINEAR').upper()
        finite = bool(np.isfinite(center) and np.isfinite(width))
        if function == 'LINEAR' and finite and width > 1:
            unit = (values - (center - 0.5)) / (width - 1) + 0.5
        elif function == 'LINEAR' and finite and width == 1:
            unit = (values > center - 0.5) * 1.0  # the limit of the formula: a step
        elif function == 'LINEAR_EXACT' and finite and width > 0:
            unit = (values - center) / width + 0.5
        else:
            raise ValueError(f'window {function} with center {center} and width {width} is not '
                             'supported; expected LINEAR (width >= 1) or LINEAR_EXACT '
                             '(width > 0) with finite values')
    else:
        low, high = float(values[present].min()), float(values[present].max())
        unit = (values - low) / (high - low) if high > low else np.zeros_like(values)
    unit = np.clip(unit, 0, 1)
    return 1 - unit if ds.PhotometricInterpretation == 'MONOCHROME1' else unit


def read_dicom_uint8(path: str) -> np.ndarray:
    """Read a grey DICOM image as 8-bit pixels by the rule of this module.

    The rule is evaluated once per possible stored value (at most 65536) in float64 and applied
    as a lookup table, so a 4000x3000 mammogram costs one indexing pass and no float copy.

    Args:
        path (str): The ``.dcm`` file.

    Returns:
        np.ndarray: uint8, HxW.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: A file that pydicom cannot read, or one outside the rule (not grey, several
            frames or samples, pixel data of the wrong size, an unsupported window), naming the
            file, the attribute at fault and what was expected.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'"{path}" not found; {_EXPECTED}.')
    import pydicom  # deferred: only DICOM datasets need it
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(path)
        _check_pixel_module(ds)
        stored = ds.pixel_array
        if stored.shape != (ds.Rows, ds.Columns) or stored.dtype.kind not in 'iu':
            raise ValueError(f'the pixels decode to {stored.dtype} {stored.shape}, expected '
                             f'integers of shape ({ds.Rows}, {ds.Columns})')
        # Index the table by the stored bit pattern: entry i is for the value whose bits are i.
        unsigned = np.dtype(f'u{stored.dtype.itemsize}')
        codes = stored.view(unsigned)
        domain = np.arange(2 ** (8 * unsigned.itemsize), dtype=unsigned).view(stored.dtype)
        values = np.asarray(apply_modality_lut(domain.astype(np.int64), ds), dtype=np.float64)
        present = np.bincount(codes.ravel(), minlength=len(domain)) > 0
        unit = _unit_range(ds, values, present)
    except Exception as err:  # pydicom raises many kinds of error for a damaged file
        raise ValueError(f'"{path}" could not be read as a DICOM image ({type(err).__name__}: '
                         f'{err}); {_EXPECTED}.') from err
    return np.floor(unit * 255 + 0.5).astype(np.uint8)[codes]


@TRANSFORMS.register_module()
class LoadDicom(BaseTransform):
    """Load a grey DICOM image (e.g. a mammogram) as 8-bit pixels.

    The conversion is :func:`read_dicom_uint8` (see the module docstring for the rule: Modality
    LUT, the DICOM window when present else the image's min-max range, MONOCHROME1 inverted).

    Required Keys:

    - img_path

    Added Keys:

    - img (np.uint8, or np.float32 with ``to_float32``; HxWx3 or HxW)
    - img_shape
    - ori_shape

    Args:
        to_float32 (bool): Return a float32 image instead of uint8. Defaults to False.
        color_type (str): ``'color'`` (the grey values repeated to 3 channels, as
            ``LoadImageStrict`` gives grey files, for ImageNet weights) or ``'grayscale'``
            (HxW). Defaults to ``'color'``.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: An unreadable file or one outside the rule, naming the file.
    """

    def __init__(self, to_float32: bool = False, color_type: str = 'color') -> None:
        if color_type not in ('color', 'grayscale'):
            raise ValueError(f"LoadDicom: color_type must be 'color' or 'grayscale', "
                             f'got {color_type!r}.')
        self.to_float32 = to_float32
        self.color_type = color_type

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` into ``results['img']``.

        Args:
            results (dict): Must hold ``img_path``.

        Returns:
            dict: ``results`` with ``img``, ``img_shape`` and ``ori_shape``.
        """
        img = read_dicom_uint8(results['img_path'])
        if self.color_type == 'color':
            img = np.repeat(img[:, :, None], 3, axis=2)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(to_float32={self.to_float32}, '
                f"color_type='{self.color_type}')")
