"""Write each test image's predicted mask at the image's size, in its dataset's challenge format."""
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from medtrans.fileio import atomic_write_bytes
from medtrans.registry import METRICS

__all__ = ['DumpSegMasks']

#: File name of a mask for an image named ``<stem>.<ext>`` when the dataset's metainfo gives
#: no ``mask_file_name``.
DEFAULT_MASK_FILE_NAME = '{stem}.png'


@METRICS.register_module()
class DumpSegMasks(BaseMetric):
    """Save predicted segmentation masks as single-channel PNG files, ready to submit.

    ``tools/test.py --out-dir DIR`` (and ``tools/infer.py``) add it to the test evaluator. Each
    process writes the masks of its own images (atomically) as it receives them, so nothing as
    large as a mask is gathered across processes.

    * **Name**: the dataset's ``mask_file_name`` pattern (its metainfo) filled with the image's
      file stem: ISIC 2018 Task 1 gives ``ISIC_<id>_segmentation.png``, the name of the
      challenge's ground truth; ``<stem>.png`` otherwise.
    * **Size**: the image's original size (``ori_shape``): the model's prediction is resized
      there by mmseg's ``postprocess_result``, as the metrics score it.
    * **Values**: for two classes (background, lesion) 0 and 255, as the challenge's masks;
      for more, the class index.

    Args:
        out_dir (str): Folder of the masks (created).
        collect_device (str): Device used to gather the file names. Defaults to 'cpu'.
        collect_dir (str, optional): Shared folder for 'cpu' gathering. Defaults to None.
    """

    # It returns no metric to name: no prefix (MMEngine warns where the prefix is None).
    default_prefix = ''

    def __init__(self, out_dir: str, collect_device: str = 'cpu',
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, collect_dir=collect_dir)
        self.out_dir = str(out_dir)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        meta = self.dataset_meta or {}
        pattern = meta.get('mask_file_name', DEFAULT_MASK_FILE_NAME)
        num_classes = len(meta.get('classes', ()))
        if num_classes > 256:
            raise ValueError(f'DumpSegMasks: {num_classes} classes do not fit 8-bit masks.')
        binary = num_classes == 2
        for sample in data_samples:
            img_path = sample.get('img_path')
            if 'pred_sem_seg' not in sample or img_path is None:
                raise ValueError(f'DumpSegMasks: a data sample ({img_path or "no img_path"}) '
                                 'has no pred_sem_seg or img_path; --out-dir writes the masks '
                                 'of segmentation models.')
            mask = torch.as_tensor(sample['pred_sem_seg']['data']).squeeze(0)
            if tuple(mask.shape) != tuple(sample['ori_shape'][:2]):
                raise ValueError(f'DumpSegMasks: {img_path}: the prediction is '
                                 f'{tuple(mask.shape)}, not the image size '
                                 f"{tuple(sample['ori_shape'][:2])}.")
            mask = mask.to('cpu', torch.uint8).numpy()
            mask = np.where(mask > 0, 255, 0).astype(np.uint8) if binary else mask
            stem = osp.splitext(osp.basename(img_path))[0]
            name = pattern.format(stem=stem)
            ok, encoded = cv2.imencode('.png', mask)
            if not ok:
                raise RuntimeError(f'DumpSegMasks: could not encode the mask of {img_path}')
            atomic_write_bytes(osp.join(self.out_dir, name), encoded.tobytes())
            self.results.append(name)

    def compute_metrics(self, results: List[str]) -> Dict[str, float]:
        print_log(f'Wrote {len(results)} predicted masks to {self.out_dir}', logger='current')
        return {}
