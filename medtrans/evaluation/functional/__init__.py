from .segmentation import (
    binary_confusion,
    confusion_counts,
    foreground_iou,
    foreground_iou_from_counts,
    mean_dice,
    mean_dice_from_counts,
    per_image_dice,
    per_image_dice_from_counts,
    per_image_jaccard,
    per_image_jaccard_from_counts,
    thresholded_jaccard,
    thresholded_jaccard_from_counts,
)

__all__ = [
    'binary_confusion', 'confusion_counts', 'foreground_iou', 'foreground_iou_from_counts',
    'per_image_jaccard', 'per_image_jaccard_from_counts', 'thresholded_jaccard',
    'thresholded_jaccard_from_counts', 'per_image_dice', 'per_image_dice_from_counts',
    'mean_dice', 'mean_dice_from_counts'
]
