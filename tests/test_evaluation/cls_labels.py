"""Real classification label tables (ISIC 2019, CheXpert), generated scores, captured warnings."""
import csv
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np
from mmengine.logging import MMLogger

ISIC2019_CSV = Path('isic2019') / 'ISIC_2019_Training_GroundTruth.csv'
CHEXPERT_CSV = Path('chexpert') / 'train_sample.csv'
CHEXPERT_CLASSES = (
    'No Finding', 'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity', 'Lung Lesion',
    'Edema', 'Consolidation', 'Pneumonia', 'Atelectasis', 'Pneumothorax', 'Pleural Effusion',
    'Pleural Other', 'Fracture', 'Support Devices')
CHEXPERT_COMPETITION = ('Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema',
                        'Pleural Effusion')


def read_isic2019_labels(fixtures_dir: Path,
                         limit: Optional[int] = None) -> Tuple[np.ndarray, List[str]]:
    """Class index of each row of the real ISIC 2019 ground truth (one-hot, UNK never set)."""
    with open(fixtures_dir / ISIC2019_CSV, newline='') as f:
        rows = list(csv.reader(f))
    classes, body = rows[0][1:], rows[1:] if limit is None else rows[1:limit + 1]
    onehot = np.array([[float(v) for v in row[1:]] for row in body])
    assert (onehot.sum(axis=1) == 1).all()
    return onehot.argmax(axis=1), classes


def read_chexpert_targets(fixtures_dir: Path) -> Tuple[np.ndarray, List[str]]:
    """The 14 observations of the real CheXpert sample under U-Ignore: 1 positive, 0 negative
    or not mentioned (blank), -1 uncertain (ignored)."""
    with open(fixtures_dir / CHEXPERT_CSV, newline='') as f:
        rows = list(csv.DictReader(f))
    targets = np.array([[float(row[name] or 0) for name in CHEXPERT_CLASSES] for row in rows])
    return targets, list(CHEXPERT_CLASSES)


def noisy_scores(targets: np.ndarray, seed: int, softmax: bool = True) -> np.ndarray:
    """float32 scores that follow ``targets`` (N, C) with noise, rounded to two decimals so
    that many scores tie; a softmax over the classes, or a sigmoid per class."""
    rng = np.random.default_rng(seed)
    logits = 2.0 * (targets == 1) + rng.normal(size=targets.shape)
    if softmax:
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        scores = exp / exp.sum(axis=1, keepdims=True)
    else:
        scores = 1.0 / (1.0 + np.exp(-logits))
    return np.round(scores, 2).astype(np.float32)


@contextmanager
def logged_warnings() -> Iterator[List[str]]:
    """Collect the warnings logged to the current MMEngine logger inside the block."""
    messages: List[str] = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
