"""Binary lesion segmentation metric for MMEngine evaluators."""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric

from medtrans.evaluation.functional.segmentation import (
    binary_confusion,
    check_ignore_index,
    foreground_iou_from_counts,
    mean_dice_from_counts,
    per_image_jaccard_from_counts,
    thresholded_jaccard_from_counts,
)
from medtrans.registry import METRICS

__all__ = ['LesionSegMetric']


@METRICS.register_module()
class LesionSegMetric(BaseMetric):
    """Foreground IoU, per-image Jaccard and Dice, and the ISIC 2018 score of binary masks.

    Reads mmseg ``SegDataSample`` outputs (``pred_sem_seg`` and ``gt_sem_seg``, labels 0 =
    background, 1 = lesion, ``ignore_index`` = unscored). ``process`` keeps only three counts per
    image, so memory stays small and the results gather across ranks like any MMEngine metric.
    The scores are those of :mod:`medtrans.evaluation.functional.segmentation`:

    * ``IoU``: foreground IoU pooled over the split (the number the study reports);
    * ``Jaccard``: mean per-image Jaccard;
    * ``thresholded_Jaccard``: mean per-image Jaccard with values below ``threshold`` set to 0
      (the ISIC 2018 Task 1 challenge score);
    * ``Dice``: mean per-image Dice.

    All are floats in [0, 1]. An image with no lesion in prediction and target scores 1.0.

    Args:
        ignore_index (int): Ground-truth label of unscored pixels; not 0 or 1, the labels
            scored. Defaults to 255.
        threshold (float): Threshold of ``thresholded_Jaccard``. Defaults to 0.65.
        collect_device (str): Device used to gather results across ranks, 'cpu' or 'gpu'.
            Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names (``prefix/IoU``). Defaults to None,
            which keeps the bare names.
        collect_dir (str, optional): Shared folder through which 'cpu' collection gathers the
            ranks' results. Defaults to None (MMEngine's choice, a temporary folder under the
            current directory).

    Raises:
        ValueError: ``ignore_index`` is 0 or 1, or ``threshold`` lies outside [0, 1].
    """

    # Metric names are the study's as they stand ('kappa', 'IoU'): no prefix, on purpose (MMEngine
    # warns where the prefix is None).
    default_prefix = ''

    def __init__(self,
                 ignore_index: int = 255,
                 threshold: float = 0.65,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f'threshold must lie in [0, 1], got {threshold}.')
        check_ignore_index(ignore_index)
        self.ignore_index = ignore_index
        self.threshold = threshold

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Count true positives, false positives and false negatives of each image.

        Args:
            data_batch (Any): The batch from the dataloader (unused).
            data_samples (Sequence[dict]): Model outputs, each with ``pred_sem_seg['data']``
                and ``gt_sem_seg['data']`` of shape (1, H, W).

        Raises:
            ValueError: A sample lacks a mask, or its masks differ in shape or hold labels
                other than 0, 1 and ``ignore_index``; the message names the image.
        """
        for sample in data_samples:
            name = sample.get('img_path', '<image without img_path>')
            for key in ('pred_sem_seg', 'gt_sem_seg'):
                if key not in sample:
                    raise ValueError(f'{name}: the data sample has no "{key}"; '
                                     'LesionSegMetric needs a prediction and a ground truth.')
            pred = sample['pred_sem_seg']['data']
            target = sample['gt_sem_seg']['data']
            try:
                tp, fp, fn, _ = binary_confusion(pred, target, self.ignore_index)
            except ValueError as err:
                raise ValueError(f'{name}: {err}') from err
            self.results.append((tp, fp, fn))

    def compute_metrics(self, results: List[Tuple[int, int, int]]) -> Dict[str, float]:
        """Compute the scores from the per-image counts of the whole split.

        Args:
            results (list[tuple[int, int, int]]): ``(tp, fp, fn)`` of each image.

        Returns:
            dict[str, float]: ``IoU``, ``Jaccard``, ``thresholded_Jaccard`` and ``Dice``.
        """
        if not results:
            raise ValueError('LesionSegMetric received no images: nothing was processed.')
        tp, fp, fn = np.asarray(results, dtype=np.int64).T
        return {
            'IoU': foreground_iou_from_counts(tp, fp, fn),
            'Jaccard': float(per_image_jaccard_from_counts(tp, fp, fn).mean()),
            'thresholded_Jaccard': thresholded_jaccard_from_counts(tp, fp, fn, self.threshold),
            'Dice': mean_dice_from_counts(tp, fp, fn),
        }
