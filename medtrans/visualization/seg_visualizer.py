"""Segmentation overlays at a bounded size."""
import os.path as osp
from typing import Optional

import cv2
import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.visualization import SegLocalVisualizer

from medtrans.registry import VISUALIZERS

__all__ = ['BoundedSegLocalVisualizer']


@VISUALIZERS.register_module()
class BoundedSegLocalVisualizer(SegLocalVisualizer):
    """mmseg's ``SegLocalVisualizer`` drawing at most ``max_size`` pixels on the longer side.

    mmseg draws at the image's size: a 6000x4000 ISIC image gives a 48-megapixel stitched PNG
    (ground truth beside prediction) and most of a test run's time. Larger images are shrunk
    first (area interpolation), then drawn as mmseg does. Masks of another size than the drawn
    image (all of them after shrinking; masks of a pre-resized copy drawn over the original, in
    a validation set read outside test mode) are resized to it by nearest neighbour.

    With ``out_dir`` (``tools/test.py --show-dir``), each drawing is written to
    ``<out_dir>/<image stem>.png``, as ``tools/infer.py`` names its overlays, rather than through
    the backends (``vis_data/vis_image/test_<image name>_<step>.png``).

    Args:
        name (str): The instance name (MMEngine's ManagerMixin). Defaults to 'visualizer'.
        max_size (int): Longer side of the drawn image in pixels. Defaults to 1024.
        out_dir (str, optional): Folder of the drawings, by image. Defaults to None (the
            backends).
        **kwargs: As :class:`mmseg.visualization.SegLocalVisualizer`.
    """

    def __init__(self, name: str = 'visualizer', max_size: int = 1024,
                 out_dir: Optional[str] = None, **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        if max_size < 1:
            raise ValueError(f'BoundedSegLocalVisualizer: max_size must be positive, got '
                             f'{max_size}')
        self.max_size = max_size
        self.out_dir = out_dir

    def add_datasample(self, name: str, image: np.ndarray, data_sample=None, *args,
                       **kwargs) -> None:
        scale = self.max_size / max(image.shape[:2])
        if scale < 1:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        img_path = data_sample.get('img_path') if data_sample is not None else None
        if self.out_dir is not None and img_path and kwargs.get('out_file') is None:
            stem = osp.splitext(osp.basename(img_path))[0]
            kwargs['out_file'] = osp.join(self.out_dir, f'{stem}.png')
        super().add_datasample(name, image, _masks_sized(data_sample, image.shape[:2]), *args,
                               **kwargs)


def _masks_sized(data_sample: Optional[object], shape) -> Optional[object]:
    """``data_sample`` with its masks of another (height, width) than ``shape`` resized to it."""
    if data_sample is None:
        return None
    keys = [key for key in ('gt_sem_seg', 'pred_sem_seg')
            if key in data_sample and tuple(data_sample.get(key).shape) != tuple(shape)]
    if not keys:
        return data_sample
    data_sample = data_sample.clone()
    for key in keys:
        mask = data_sample.get(key).data[0].cpu().numpy().astype(np.uint8)
        mask = cv2.resize(mask, shape[::-1], interpolation=cv2.INTER_NEAREST)
        data_sample.set_field(PixelData(data=torch.from_numpy(mask)[None]), key)
    return data_sample
