from .classification import (
    IGNORE_TARGET,
    accuracy,
    balanced_recall,
    binary_roc_auc,
    class_mean,
    cohen_kappa,
    per_class_recall,
    per_class_roc_auc,
)
from .knn import KNNClassifier, KNNIndex, knn_neighbours, knn_scores
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
    'mean_dice', 'mean_dice_from_counts', 'IGNORE_TARGET', 'accuracy', 'cohen_kappa',
    'per_class_recall', 'balanced_recall', 'per_class_roc_auc', 'binary_roc_auc', 'class_mean',
    'KNNIndex', 'KNNClassifier', 'knn_scores', 'knn_neighbours'
]
