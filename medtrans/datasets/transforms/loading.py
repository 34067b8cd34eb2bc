"""Loading transforms that refuse bad files instead of passing them on.

``LoadImageStrict`` and ``LoadBinaryMask`` stand in for MMCV's ``LoadImageFromFile`` and
MMSeg's ``LoadAnnotations`` where a corrupt image or a mask with unexpected values must stop the
run with the file's name, not turn into an ``AssertionError`` or a silently wrong label.
"""
from typing import Optional, Tuple

import cv2
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform

from medtrans.registry import TRANSFORMS

__all__ = ['LoadImageStrict', 'LoadBinaryMask', 'read_bytes', 'decode_image']

_DECODABLE = 'expected a decodable image (jpg/png)'


def read_bytes(path: str, backend_args: Optional[dict] = None) -> bytes:
    """The bytes of an image file; a missing or empty file is an error naming it."""
    try:
        content = fileio.get(path, backend_args=backend_args)
    except FileNotFoundError as err:
        raise FileNotFoundError(f'"{path}" not found; {_DECODABLE}.') from err
    if not content:
        raise ValueError(f'"{path}" is empty (0 bytes); {_DECODABLE}.')
    return content


# Start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
_SOF_MARKERS = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                          0xCE, 0xCF))
# OpenCV's reduced decoding flags (libjpeg DCT scaling), by factor: (grey, colour).
_REDUCED = {8: (cv2.IMREAD_REDUCED_GRAYSCALE_8, cv2.IMREAD_REDUCED_COLOR_8),
            4: (cv2.IMREAD_REDUCED_GRAYSCALE_4, cv2.IMREAD_REDUCED_COLOR_4),
            2: (cv2.IMREAD_REDUCED_GRAYSCALE_2, cv2.IMREAD_REDUCED_COLOR_2)}


def _walk_jpeg(content: bytes) -> Tuple[Optional[int], Optional[Tuple[int, int]]]:
    """Walk a JPEG's segment headers up to its first scan.

    The headers are walked (not searched), so that a thumbnail inside EXIF data is skipped.

    Returns:
        tuple: The offset of the start-of-scan marker (-1 if the data end before it, None if
        bytes that are not a marker come first: not the structure walked here), and the
        (height, width) of the frame header if one came before.
    """
    pos, size = 2, None
    while pos + 4 <= len(content):
        if content[pos] != 0xFF:
            return None, size
        marker = content[pos + 1]
        if marker == 0xFF:
            pos += 1  # fill byte before a marker
            continue
        if marker == 0xDA:
            return pos, size
        if marker in _SOF_MARKERS and pos + 9 <= len(content):
            size = (int.from_bytes(content[pos + 5:pos + 7], 'big'),
                    int.from_bytes(content[pos + 7:pos + 9], 'big'))
        pos += 2 + int.from_bytes(content[pos + 2:pos + 4], 'big')
    return -1, size


def decode_image(path: str, content: bytes, reduce_jpeg_to: Optional[int] = None,
            grey: bool = False) -> np.ndarray:
    """Decode image bytes with OpenCV, as stored (any depth and channels, no EXIF rotation).

    A JPEG is decoded at 1/2, 1/4 or 1/8 of its size (8-bit, BGR or grey as ``grey`` says)
    when ``reduce_jpeg_to`` is given and its shorter side stays at least that long.
    """
    flags = cv2.IMREAD_UNCHANGED
    if content[:2] == b'\xff\xd8':
        # Some OpenCV builds decode a truncated JPEG with a warning and grey-filled rows.
        # Entropy-coded data cannot contain the end-of-image marker FFD9, so a complete file
        # has one after the scan start; bytes after it (camera trailers) are allowed.
        scan, size = _walk_jpeg(content)
        if scan == -1 or (scan is not None and content.find(b'\xff\xd9', scan) == -1):
            raise ValueError(f'"{path}" is a truncated JPEG (no end-of-image marker); '
                             f'{_DECODABLE}.')
        if reduce_jpeg_to is not None and size is not None:
            factor = next((f for f in _REDUCED if -(-min(size) // f) >= reduce_jpeg_to), None)
            if factor is not None:
                # IMREAD_UNCHANGED ignores the EXIF orientation; so must the reduced decoding.
                flags = _REDUCED[factor][0 if grey else 1] | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        img = cv2.imdecode(np.frombuffer(content, np.uint8), flags)
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
    * ``color_type='color'``: grey images are repeated to 3 channels (as ImageNet weights
      expect); ``color_type='grayscale'``: colour images are converted to one channel
      (ITU-R BT.601).

    For classification pipelines that shrink large photos anyway, ``reduce_jpeg_to`` decodes
    a JPEG at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling: an area average, and faster
    than decoding at full size), the largest reduction that keeps its shorter side at least
    ``reduce_jpeg_to`` pixels; ``img_shape`` and ``ori_shape`` are then the reduced size. Other
    formats are decoded at full size. Not for segmentation: masks must match the stored size.

    A sample with a pre-resized copy (:mod:`medtrans.datasets.preresize`) is read from
    ``img_cache_path`` instead of ``img_path``. In a segmentation test it also carries
    ``source_shape``, the original's (height, width): it becomes ``ori_shape``, so that
    predictions are resized back to, and scored at, the original mask's size.

    Required Keys:

    - img_path
    - img_cache_path (optional: read instead)
    - source_shape (optional)

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
        reduce_jpeg_to (int, optional): Shortest side a reduced JPEG decoding may give, e.g.
            the first resize of the pipeline. Defaults to None (full size).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: An empty, truncated, unreadable or non-image file, or an unsupported depth,
            naming the file and "expected a decodable image (jpg/png)".
    """

    def __init__(self,
                 to_float32: bool = False,
                 color_type: str = 'color',
                 backend_args: Optional[dict] = None,
                 reduce_jpeg_to: Optional[int] = None) -> None:
        if color_type not in ('color', 'grayscale'):
            raise ValueError(f"LoadImageStrict: color_type must be 'color' or 'grayscale', "
                             f'got {color_type!r}.')
        if reduce_jpeg_to is not None and (isinstance(reduce_jpeg_to, bool) or not (
                isinstance(reduce_jpeg_to, int) and reduce_jpeg_to > 0)):
            raise ValueError('LoadImageStrict: reduce_jpeg_to must be a positive int or None, '
                             f'got {reduce_jpeg_to!r}.')
        self.to_float32 = to_float32
        self.color_type = color_type
        self.backend_args = backend_args.copy() if backend_args else None
        self.reduce_jpeg_to = reduce_jpeg_to

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
        path = results.get('img_cache_path') or results['img_path']
        content = read_bytes(path, self.backend_args)
        img = self._to_8bit_bgr(path, decode_image(path, content, self.reduce_jpeg_to,
                                              grey=self.color_type == 'grayscale'))
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = tuple(results.get('source_shape', img.shape[:2]))
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(to_float32={self.to_float32}, '
                f"color_type='{self.color_type}', backend_args={self.backend_args}, "
                f'reduce_jpeg_to={self.reduce_jpeg_to})')


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

    Without ``seg_map_path`` (images without labels, as ``tools/infer.py`` and
    :func:`medtrans.apis.inference` give the test pipeline) it adds nothing, so one test
    pipeline serves testing and inference. A pre-resized copy of the mask
    (:mod:`medtrans.datasets.preresize`), in ``seg_map_cache_path``, is read instead.

    Required Keys:

    - seg_map_path (optional: without it, nothing is loaded)
    - seg_map_cache_path (optional: read instead)
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
            results (dict): Holds ``seg_map_path``, or no label to load.

        Returns:
            dict: ``results`` with ``gt_seg_map``, ``seg_fields`` and ``reduce_zero_label``.
        """
        if results.get('seg_map_path') is None:
            return results
        path = results.get('seg_map_cache_path') or results['seg_map_path']
        mask = decode_image(path, read_bytes(path, self.backend_args))
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
