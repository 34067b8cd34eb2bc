"""Loading transforms that refuse bad files instead of passing them on.

``LoadImageStrict`` and ``LoadBinaryMask`` stand in for MMCV's ``LoadImageFromFile`` and
MMSeg's ``LoadAnnotations`` where a corrupt image or a mask with unexpected values must stop the
run with the file's name, not turn into an ``AssertionError`` or a silently wrong label.
"""
from typing import Optional

import cv2
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform

from medtrans.registry import TRANSFORMS

__all__ = ['LoadImageStrict', 'LoadBinaryMask']

_DECODABLE = 'expected a decodable image (jpg/png)'


def _read_bytes(path: str, backend_args: Optional[dict]) -> bytes:
    try:
        content = fileio.get(path, backend_args=backend_args)
    except FileNotFoundError as err:
        raise FileNotFoundError(f'"{path}" not found; {_DECODABLE}.') from err
    if not content:
        raise ValueError(f'"{path}" is empty (0 bytes); {_DECODABLE}.')
    return content


def _jpeg_is_truncated(content: bytes) -> bool:
    """Whether a JPEG stream ends before its end-of-image marker.

    Some OpenCV builds decode a truncated JPEG with a warning and grey-filled rows. The segment
    headers before the first scan are walked (so that a thumbnail inside EXIF data is skipped);
    after it, entropy-coded data cannot contain the end-of-image marker FFD9, so a complete file
    has one after the scan start. Bytes after the marker (camera trailers) are allowed.
    """
    pos = 2
    while pos + 4 <= len(content):
        if content[pos] != 0xFF:
            # Not the structure walked here: leave the judgement to the decoder.
            return False
        marker = content[pos + 1]
        if marker == 0xFF:
            pos += 1  # fill byte before a marker
        elif marker == 0xDA:
            return content.find(b'\xff\xd9', pos) == -1
        else:
            pos += 2 + int.from_bytes(content[pos + 2:pos + 4], 'big')
    return True


def _decode(path: str, content: bytes) -> np.ndarray:
    """Decode image bytes with OpenCV, as stored (any depth and channels, no EXIF rotation)."""
    if content[:2] == b'\xff\xd8' and _jpeg_is_truncated(content):
        raise ValueError(f'"{path}" is a truncated JPEG (no end-of-image marker); {_DECODABLE}.')
    try:
        img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        # OpenCV raises, rather than returning None, for a header that declares more pixels
        # than its limit (CV_IO_MAX_IMAGE_PIXELS, 2^30).
        raise ValueError(f'"{path}" could not be decoded ({len(content)} bytes): OpenCV refused '
                         f'it ({err.err}); corrupt, or larger than OpenCV allows; '
                         f'{_DECODABLE}.') from err
    if img is None:
        raise ValueError(f'"{path}" could not be decoded ({len(content)} bytes, starting '
                         f'{content[:8].hex()}): unreadable, truncated or not an image; '
                         f'{_DECODABLE}.')
    return img


@TRANSFORMS.register_module()
class LoadImageStrict(BaseTransform):
    """Load an image, as MMCV's ``LoadImageFromFile`` does, but refuse bad files.

    Decoding is by OpenCV with the image as stored, so channels are in **BGR** order like MMCV's
    default (``SegDataPreProcessor(bgr_to_rgb=True)`` in the model converts them), and EXIF
    orientation is not applied: images stay in the pixel order of their masks, which carry no
    orientation tag. Conversions, done explicitly:

    * 16-bit images are scaled to 8 bits by ``round(v / 257)`` (0..65535 onto 0..255);
    * an alpha channel (RGBA, grey + alpha) is dropped;
    * ``color_type='color'``: grey images are repeated to 3 channels;
      ``color_type='grayscale'``: colour images are converted to one channel (ITU-R BT.601).

    Required Keys:

    - img_path

    Added Keys:

    - img (np.uint8, or np.float32 with ``to_float32``; HxWx3 or HxW)
    - img_shape
    - ori_shape

    Args:
        to_float32 (bool): Return a float32 image instead of uint8. Defaults to False.
        color_type (str): ``'color'`` (3 channels, BGR) or ``'grayscale'`` (HxW).
            Defaults to ``'color'``.
        backend_args (dict, optional): File backend arguments for :func:`mmengine.fileio.get`.
            Defaults to None (local files).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: An empty, truncated, unreadable or non-image file, or an unsupported depth,
            naming the file and "expected a decodable image (jpg/png)".
    """

    def __init__(self,
                 to_float32: bool = False,
                 color_type: str = 'color',
                 backend_args: Optional[dict] = None) -> None:
        if color_type not in ('color', 'grayscale'):
            raise ValueError(f"LoadImageStrict: color_type must be 'color' or 'grayscale', "
                             f'got {color_type!r}.')
        self.to_float32 = to_float32
        self.color_type = color_type
        self.backend_args = backend_args.copy() if backend_args else None

    def _to_8bit_bgr(self, path: str, img: np.ndarray) -> np.ndarray:
        if img.dtype == np.uint16:
            img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
        elif img.dtype != np.uint8:
            raise ValueError(f'"{path}" holds {img.dtype} pixels; expected an 8- or 16-bit '
                             'image (jpg/png).')
        if img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        elif img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        elif not (img.ndim == 2 or img.shape[2] == 3):
            raise ValueError(f'"{path}" has {img.shape[2]} channels; expected a grey, colour or '
                             'colour+alpha image (jpg/png).')
        if self.color_type == 'color' and img.ndim == 2:
            return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        if self.color_type == 'grayscale' and img.ndim == 3:
            return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        return img

    def transform(self, results: dict) -> dict:
        """Load ``results['img_path']`` into ``results['img']``.

        Args:
            results (dict): Must hold ``img_path``.

        Returns:
            dict: ``results`` with ``img``, ``img_shape`` and ``ori_shape``.
        """
        path = results['img_path']
        img = self._to_8bit_bgr(path, _decode(path, _read_bytes(path, self.backend_args)))
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(to_float32={self.to_float32}, '
                f"color_type='{self.color_type}', backend_args={self.backend_args})")


@TRANSFORMS.register_module()
class LoadBinaryMask(BaseTransform):
    """Load a binary segmentation mask and check it against its image.

    The mask must be an 8-bit image whose values are a subset of {0, 255} or of {0, 1}; it
    becomes a {0, 1} uint8 ``gt_seg_map`` (0 background, 1 foreground). Colour masks are
    converted to grey first, so only black/white ones pass the value check. When an image was
    loaded before (``img_shape`` present), the mask must have the image's original height and
    width (``ori_shape``).

    Place it before any resize, crop or flip in a training pipeline, so that those transforms
    apply to the mask too. In a test pipeline it may follow ``Resize``, as in MMSeg's test
    pipelines: the ground truth then stays at the original size, and the metric compares it with
    the prediction resized back to ``ori_shape``.

    Required Keys:

    - seg_map_path
    - img_shape, ori_shape (optional; checked against when present)

    Added Keys:

    - gt_seg_map (np.uint8, HxW, values {0, 1})
    - seg_fields (``'gt_seg_map'`` appended)
    - reduce_zero_label (False)

    Args:
        backend_args (dict, optional): File backend arguments for :func:`mmengine.fileio.get`.
            Defaults to None (local files).

    Raises:
        FileNotFoundError: The mask file does not exist.
        ValueError: An unreadable mask, values outside {0, 255} / {0, 1}, or a size other than
            the image's original size.
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args.copy() if backend_args else None

    def transform(self, results: dict) -> dict:
        """Load ``results['seg_map_path']`` into ``results['gt_seg_map']``.

        Args:
            results (dict): Must hold ``seg_map_path``.

        Returns:
            dict: ``results`` with ``gt_seg_map``, ``seg_fields`` and ``reduce_zero_label``.
        """
        path = results['seg_map_path']
        mask = _decode(path, _read_bytes(path, self.backend_args))
        if mask.dtype != np.uint8:
            raise ValueError(f'Mask "{path}" holds {mask.dtype} pixels; expected an 8-bit '
                             'mask with values {0, 255} or {0, 1}.')
        if mask.ndim == 3:
            mask = cv2.cvtColor(mask, cv2.COLOR_BGRA2GRAY if mask.shape[2] == 4 else
                                cv2.COLOR_BGR2GRAY)

        if 'img_shape' in results:
            # The original size, so the check holds wherever the transform sits.
            ori_shape = tuple(results.get('ori_shape', results['img_shape']))
            if mask.shape[:2] != ori_shape:
                raise ValueError(
                    f'Mask "{path}" is {mask.shape[0]}x{mask.shape[1]} (HxW) but its image '
                    f'"{results.get("img_path")}" is {ori_shape[0]}x{ori_shape[1]}; expected '
                    'the same size.')

        # A 256-bin histogram costs one pass in C; np.unique would sort every pixel.
        hist = cv2.calcHist([mask], [0], None, [256], [0, 256])[:, 0]
        values = np.flatnonzero(hist)
        if values.max(initial=0) <= 1:
            gt = mask
        elif set(values.tolist()) <= {0, 255}:
            gt = (mask > 0).view(np.uint8)
        else:
            raise ValueError(
                f'Mask "{path}" holds values {values[:8].tolist()}'
                f'{" ..." if len(values) > 8 else ""}; expected a binary mask with values in '
                '{0, 255} or {0, 1}.')

        results['gt_seg_map'] = gt
        results.setdefault('seg_fields', []).append('gt_seg_map')
        results['reduce_zero_label'] = False
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(backend_args={self.backend_args})'
