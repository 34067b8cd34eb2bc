"""Real ISIC 2018 lesion masks, predictions made by perturbing them, scikit-learn references."""
from pathlib import Path
from typing import Callable, Dict

import cv2
import numpy as np
from sklearn.metrics import f1_score, jaccard_score

MASK_DIR = Path('isic2018_task1') / 'ISIC2018_Task1_Training_GroundTruth'
SMALL_SIDE = 128


def read_isic_mask(path: Path, max_side: int = 0) -> np.ndarray:
    """Read an official mask ({0, 255}) as {0, 1}, optionally shrunk (nearest) to ``max_side``."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert mask is not None and mask.ndim == 2, path
    assert set(np.unique(mask).tolist()) <= {0, 255}, path
    if max_side:
        scale = max_side / max(mask.shape)
        size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    return (mask == 255).astype(np.uint8)


def _shift(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    dy, dx = (int(v) for v in rng.integers(-mask.shape[0] // 8, mask.shape[0] // 8 + 1, size=2))
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(mask, matrix, mask.shape[::-1], flags=cv2.INTER_NEAREST)


def _erode(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = max(3, max(mask.shape) // 25)
    return cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))


def _dilate(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = max(3, max(mask.shape) // 12)
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))


def _flip_pixels(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flips = rng.random(mask.shape) < 0.05
    return np.where(flips, 1 - mask, mask).astype(np.uint8)


def _shift_erode_flip(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _flip_pixels(_erode(_shift(mask, rng), rng), rng)


PERTURBATIONS: Dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    'shift': _shift,
    'erode': _erode,
    'dilate': _dilate,
    'flip_pixels': _flip_pixels,
    'shift_erode_flip': _shift_erode_flip,
}


def perturb(mask: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """A plausible imperfect prediction of ``mask``; deterministic for a seed."""
    return PERTURBATIONS[kind](mask, np.random.default_rng(seed))


def sklearn_scores(pred: np.ndarray, target: np.ndarray, ignore_index: int = 255):
    """Reference (Jaccard, Dice) of one image from scikit-learn, over the scored pixels.

    ``zero_division=1.0`` gives an image with no foreground anywhere a score of 1.0.
    """
    keep = target.reshape(-1) != ignore_index
    y_true, y_pred = target.reshape(-1)[keep], pred.reshape(-1)[keep]
    kwargs = dict(pos_label=1, average='binary', zero_division=1.0)
    return jaccard_score(y_true, y_pred, **kwargs), f1_score(y_true, y_pred, **kwargs)


def sklearn_pooled_iou(preds, targets, ignore_index: int = 255) -> float:
    """Reference foreground IoU of a split: scikit-learn's Jaccard of all scored pixels pooled."""
    y_true = np.concatenate([t.reshape(-1) for t in targets])
    y_pred = np.concatenate([p.reshape(-1) for p in preds])
    keep = y_true != ignore_index
    return jaccard_score(y_true[keep], y_pred[keep], pos_label=1, average='binary',
                         zero_division=1.0)
