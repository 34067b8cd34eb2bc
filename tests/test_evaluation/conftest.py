"""Fixtures of real ISIC 2018 lesion masks and perturbed predictions, for the metric tests."""
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

from .isic_masks import MASK_DIR, PERTURBATIONS, SMALL_SIDE, perturb, read_isic_mask


@pytest.fixture(scope='session')
def isic_mask_paths(fixtures_dir: Path) -> List[Path]:
    paths = sorted((fixtures_dir / MASK_DIR).glob('*.png'))
    assert len(paths) == 10
    return paths


@pytest.fixture(scope='session')
def isic_pairs(isic_mask_paths: List[Path]) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """(name, prediction, target) for each real mask shrunk to ``SMALL_SIDE``, each perturbed
    in one of the ways of ``PERTURBATIONS`` in turn."""
    kinds = list(PERTURBATIONS)
    pairs = []
    for i, path in enumerate(isic_mask_paths):
        target = read_isic_mask(path, SMALL_SIDE)
        pairs.append((path.name, perturb(target, kinds[i % len(kinds)], seed=i), target))
    return pairs
