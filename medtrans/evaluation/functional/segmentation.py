"""Binary lesion segmentation scores, as pure functions.

The foreground is class 1 and the background class 0. Pixels whose target equals
``ignore_index`` are left out of every count; ``ignore_index`` may therefore not be 0 or 1.

Each score comes in two forms that share one implementation:

* ``*_from_counts(tp, fp, fn)`` takes per-image true-positive, false-positive and false-negative
  pixel counts (what :class:`medtrans.evaluation.LesionSegMetric` stores per image);
* the plain form takes a sequence of predicted and target masks, counts them with
  :func:`binary_confusion`, and calls the ``*_from_counts`` form.

Definitions (``J_i``, ``D_i`` per image ``i``, sums over the images of a split):

* foreground IoU: ``sum(tp) / sum(tp + fp + fn)`` - pooled over the split; the number the study
  reports as IoU.
* per-image Jaccard: ``J_i = tp_i / (tp_i + fp_i + fn_i)``.
* thresholded Jaccard (ISIC 2018 Task 1 score): ``mean_i(J_i if J_i >= threshold else 0)``.
* per-image Dice: ``D_i = 2 tp_i / (2 tp_i + fp_i + fn_i)``; mean Dice is its mean over images.

An image with no foreground in either the prediction or the target (``tp + fp + fn == 0``) is a
perfect answer: its Jaccard and Dice are 1.0; likewise the foreground IoU of a split without any
foreground pixel is 1.0.
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = [
    'check_ignore_index', 'binary_confusion', 'confusion_counts', 'foreground_iou',
    'foreground_iou_from_counts', 'per_image_jaccard', 'per_image_jaccard_from_counts',
    'thresholded_jaccard', 'thresholded_jaccard_from_counts', 'per_image_dice',
    'per_image_dice_from_counts', 'mean_dice', 'mean_dice_from_counts'
]

Mask = Union[np.ndarray, torch.Tensor]
Counts = Union[Sequence[int], np.ndarray]


def _label_summary(values: torch.Tensor) -> str:
    """List the distinct values of a tensor, at most ten, for an error message."""
    distinct = torch.unique(values).tolist()
    shown = ', '.join(str(v) for v in distinct[:10])
    return shown + (', ...' if len(distinct) > 10 else '')


def check_ignore_index(ignore_index: Optional[int]) -> None:
    """Refuse an ``ignore_index`` that is one of the binary labels.

    Args:
        ignore_index (int, optional): The target value of unscored pixels, or None.

    Raises:
        ValueError: ``ignore_index`` is 0 or 1: it would drop every background or lesion pixel
            from the score (with 1, every image would score 1.0).
    """
    if ignore_index is not None and ignore_index in (0, 1):
        raise ValueError(f'ignore_index={ignore_index!r} is a label of the binary masks (0 '
                         'background, 1 foreground); expected another value (e.g. 255) or None.')


def _to_tensor(mask: Mask, device: Optional[torch.device] = None) -> torch.Tensor:
    if isinstance(mask, np.ndarray) and any(stride < 0 for stride in mask.strides):
        # torch cannot view an array with negative strides (e.g. ``np.flip``): copy it.
        mask = mask.copy()
    return torch.as_tensor(mask, device=device)


def binary_confusion(pred: Mask,
                     target: Mask,
                     ignore_index: Optional[int] = 255) -> Tuple[int, int, int, int]:
    """Count the confusion matrix of one binary mask.

    Args:
        pred (np.ndarray | torch.Tensor): Predicted labels, values in {0, 1}; any shape.
        target (np.ndarray | torch.Tensor): Target labels of the same shape, values in
            {0, 1, ``ignore_index``}.
        ignore_index (int, optional): Target value of the pixels that are not scored, neither
            0 nor 1. The prediction may hold it only where the target does. None scores every
            pixel. Defaults to 255.

    Returns:
        tuple[int, int, int, int]: ``(tp, fp, fn, tn)``: foreground pixels predicted as
        foreground, background predicted as foreground, foreground predicted as background,
        background predicted as background; ignored pixels are in none of them.

    Raises:
        ValueError: ``ignore_index`` is 0 or 1, the shapes differ, a mask holds a label
            outside {0, 1, ignore_index}, or the prediction holds ``ignore_index`` where the
            target is scored.
    """
    check_ignore_index(ignore_index)
    pred = _to_tensor(pred)
    target = _to_tensor(target, pred.device)
    if pred.shape != target.shape:
        raise ValueError(f'pred and target must have the same shape, got {tuple(pred.shape)} '
                         f'and {tuple(target.shape)}.')
    allowed = '{0, 1}' if ignore_index is None else f'{{0, 1, {ignore_index}}}'
    for name, mask in (('target', target), ('pred', pred)):
        outside = (mask != 0) & (mask != 1)
        if ignore_index is not None:
            outside &= mask != ignore_index
        if outside.any():
            raise ValueError(f'{name} holds labels {_label_summary(mask[outside])} outside '
                             f'{allowed}: binary masks (foreground = 1) are expected.')

    if ignore_index is None:
        scored = torch.ones_like(target, dtype=torch.bool)
    else:
        scored = target != ignore_index
        # A prediction of ``ignore_index`` on a scored pixel would take that pixel out of the
        # score, which would let a model choose what it is scored on.
        if ((pred == ignore_index) & scored).any():
            raise ValueError(f'pred holds ignore_index={ignore_index} at pixels the target '
                             'scores: predictions must be 0 or 1 there.')
    pred_fg = (pred == 1) & scored
    target_fg = (target == 1) & scored
    tp = int((pred_fg & target_fg).sum())
    fp = int((pred_fg & ~target_fg).sum())
    fn = int((~pred_fg & target_fg).sum())
    tn = int(scored.sum()) - tp - fp - fn
    return tp, fp, fn, tn


def confusion_counts(preds: Sequence[Mask],
                     targets: Sequence[Mask],
                     ignore_index: Optional[int] = 255) -> np.ndarray:
    """Count the confusion matrix of every image of a split.

    Args:
        preds (Sequence[np.ndarray | torch.Tensor]): Predicted masks (or one stacked array
            whose first axis indexes images).
        targets (Sequence[np.ndarray | torch.Tensor]): Target masks, paired with ``preds``.
        ignore_index (int, optional): See :func:`binary_confusion`. Defaults to 255.

    Returns:
        np.ndarray: Shape (N, 4), int64, the rows ``(tp, fp, fn, tn)`` per image.

    Raises:
        ValueError: The numbers of masks differ, or a pair is invalid (see
            :func:`binary_confusion`; the message names the image index).
    """
    check_ignore_index(ignore_index)
    if len(preds) != len(targets):
        raise ValueError(f'Got {len(preds)} predictions for {len(targets)} targets.')
    counts = np.zeros((len(preds), 4), dtype=np.int64)
    for i, (pred, target) in enumerate(zip(preds, targets)):
        try:
            counts[i] = binary_confusion(pred, target, ignore_index)
        except ValueError as err:
            raise ValueError(f'image {i}: {err}') from err
    return counts


def _as_counts(tp: Counts, fp: Counts, fn: Counts) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp, fp, fn = (np.asarray(c, dtype=np.float64).reshape(-1) for c in (tp, fp, fn))
    if not tp.shape == fp.shape == fn.shape:
        raise ValueError(f'tp, fp and fn must have one count per image, got lengths '
                         f'{tp.size}, {fp.size} and {fn.size}.')
    if (tp < 0).any() or (fp < 0).any() or (fn < 0).any():
        raise ValueError('Pixel counts must be non-negative.')
    return tp, fp, fn


def _require_images(n: int, score: str) -> None:
    if n == 0:
        raise ValueError(f'{score} needs at least one image, got none.')


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 1.0 where both are 0 (nothing to find, nothing found)."""
    out = np.ones_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def foreground_iou_from_counts(tp: Counts, fp: Counts, fn: Counts) -> float:
    """Foreground IoU pooled over a split, from per-image counts.

    Args:
        tp (Sequence[int] | np.ndarray): True-positive pixels per image.
        fp (Sequence[int] | np.ndarray): False-positive pixels per image.
        fn (Sequence[int] | np.ndarray): False-negative pixels per image.

    Returns:
        float: ``sum(tp) / sum(tp + fp + fn)``; 1.0 when that denominator is 0.
    """
    tp, fp, fn = _as_counts(tp, fp, fn)
    _require_images(tp.size, 'foreground IoU')
    return float(_ratio(tp.sum(keepdims=True), (tp + fp + fn).sum(keepdims=True))[0])


def per_image_jaccard_from_counts(tp: Counts, fp: Counts, fn: Counts) -> np.ndarray:
    """Jaccard index of each image, from per-image counts.

    Args:
        tp (Sequence[int] | np.ndarray): True-positive pixels per image.
        fp (Sequence[int] | np.ndarray): False-positive pixels per image.
        fn (Sequence[int] | np.ndarray): False-negative pixels per image.

    Returns:
        np.ndarray: Shape (N,), float64, ``tp / (tp + fp + fn)``; 1.0 for an image with no
        foreground in prediction and target.
    """
    tp, fp, fn = _as_counts(tp, fp, fn)
    return _ratio(tp, tp + fp + fn)


def thresholded_jaccard_from_counts(tp: Counts,
                                    fp: Counts,
                                    fn: Counts,
                                    threshold: float = 0.65) -> float:
    """ISIC 2018 Task 1 score, from per-image counts.

    Args:
        tp (Sequence[int] | np.ndarray): True-positive pixels per image.
        fp (Sequence[int] | np.ndarray): False-positive pixels per image.
        fn (Sequence[int] | np.ndarray): False-negative pixels per image.
        threshold (float): Per-image Jaccard below this counts as 0; at or above it counts as
            itself. Defaults to 0.65, the challenge's value.

    Returns:
        float: The mean over images of the thresholded per-image Jaccard.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f'threshold must lie in [0, 1], got {threshold}.')
    jaccard = per_image_jaccard_from_counts(tp, fp, fn)
    _require_images(jaccard.size, 'thresholded Jaccard')
    return float(np.where(jaccard >= threshold, jaccard, 0.0).mean())


def per_image_dice_from_counts(tp: Counts, fp: Counts, fn: Counts) -> np.ndarray:
    """Dice coefficient of each image, from per-image counts.

    Args:
        tp (Sequence[int] | np.ndarray): True-positive pixels per image.
        fp (Sequence[int] | np.ndarray): False-positive pixels per image.
        fn (Sequence[int] | np.ndarray): False-negative pixels per image.

    Returns:
        np.ndarray: Shape (N,), float64, ``2 tp / (2 tp + fp + fn)``; 1.0 for an image with no
        foreground in prediction and target.
    """
    tp, fp, fn = _as_counts(tp, fp, fn)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def mean_dice_from_counts(tp: Counts, fp: Counts, fn: Counts) -> float:
    """Mean over images of the per-image Dice coefficient, from per-image counts.

    Args:
        tp (Sequence[int] | np.ndarray): True-positive pixels per image.
        fp (Sequence[int] | np.ndarray): False-positive pixels per image.
        fn (Sequence[int] | np.ndarray): False-negative pixels per image.

    Returns:
        float: ``mean_i(D_i)`` (not Dice pooled over the split).
    """
    dice = per_image_dice_from_counts(tp, fp, fn)
    _require_images(dice.size, 'mean Dice')
    return float(dice.mean())


def _mask_counts(preds, targets, ignore_index) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = confusion_counts(preds, targets, ignore_index)
    return counts[:, 0], counts[:, 1], counts[:, 2]


def foreground_iou(preds: Sequence[Mask],
                   targets: Sequence[Mask],
                   ignore_index: Optional[int] = 255) -> float:
    """Foreground IoU pooled over a split: sum of intersections over sum of unions.

    Args:
        preds (Sequence[np.ndarray | torch.Tensor]): Predicted masks, values in {0, 1}.
        targets (Sequence[np.ndarray | torch.Tensor]): Target masks, values in
            {0, 1, ``ignore_index``}.
        ignore_index (int, optional): Target value of unscored pixels. Defaults to 255.

    Returns:
        float: See :func:`foreground_iou_from_counts`.
    """
    return foreground_iou_from_counts(*_mask_counts(preds, targets, ignore_index))


def per_image_jaccard(preds: Sequence[Mask],
                      targets: Sequence[Mask],
                      ignore_index: Optional[int] = 255) -> np.ndarray:
    """Jaccard index of each image.

    Args:
        preds (Sequence[np.ndarray | torch.Tensor]): Predicted masks, values in {0, 1}.
        targets (Sequence[np.ndarray | torch.Tensor]): Target masks, values in
            {0, 1, ``ignore_index``}.
        ignore_index (int, optional): Target value of unscored pixels. Defaults to 255.

    Returns:
        np.ndarray: See :func:`per_image_jaccard_from_counts`.
    """
    return per_image_jaccard_from_counts(*_mask_counts(preds, targets, ignore_index))


def thresholded_jaccard(preds: Sequence[Mask],
                        targets: Sequence[Mask],
                        threshold: float = 0.65,
                        ignore_index: Optional[int] = 255) -> float:
    """ISIC 2018 Task 1 score: mean per-image Jaccard, values below ``threshold`` counted as 0.

    Args:
        preds (Sequence[np.ndarray | torch.Tensor]): Predicted masks, values in {0, 1}.
        targets (Sequence[np.ndarray | torch.Tensor]): Target masks, values in
            {0, 1, ``ignore_index``}.
        threshold (float): See :func:`thresholded_jaccard_from_counts`. Defaults to 0.65.
        ignore_index (int, optional): Target value of unscored pixels. Defaults to 255.

    Returns:
        float: See :func:`thresholded_jaccard_from_counts`.
    """
    return thresholded_jaccard_from_counts(
        *_mask_counts(preds, targets, ignore_index), threshold=threshold)


def per_image_dice(preds: Sequence[Mask],
                   targets: Sequence[Mask],
                   ignore_index: Optional[int] = 255) -> np.ndarray:
    """Dice coefficient of each image.

    Args:
        preds (Sequence[np.ndarray | torch.Tensor]): Predicted masks, values in {0, 1}.
        targets (Sequence[np.ndarray | torch.Tensor]): Target masks, values in
            {0, 1, ``ignore_index``}.
        ignore_index (int, optional): Target value of unscored pixels. Defaults to 255.

    Returns:
        np.ndarray: See :func:`per_image_dice_from_counts`.
    """
    return per_image_dice_from_counts(*_mask_counts(preds, targets, ignore_index))


def mean_dice(preds: Sequence[Mask],
              targets: Sequence[Mask],
              ignore_index: Optional[int] = 255) -> float:
    """Mean over images of the per-image Dice coefficient (not Dice pooled over the split).

    Args:
        preds (Sequence[np.ndarray | torch.Tensor]): Predicted masks, values in {0, 1}.
        targets (Sequence[np.ndarray | torch.Tensor]): Target masks, values in
            {0, 1, ``ignore_index``}.
        ignore_index (int, optional): Target value of unscored pixels. Defaults to 255.

    Returns:
        float: See :func:`mean_dice_from_counts`.
    """
    return mean_dice_from_counts(*_mask_counts(preds, targets, ignore_index))
