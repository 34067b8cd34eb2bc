"""DINO learns: k-NN on the features of a briefly DINO-trained backbone beats random init.

The whole path a user takes: ``tiny_dino_stripes.py`` trained by the Runner, the teacher's
backbone exported by ``export_backbone``, and ``knn_evaluate`` of ``tiny_knn_stripes.py`` on
that file and on the k-NN config's own random init (seed 0: a draw of the same initialisation
DINO starts from, not the same weights). The data: 32x32 images of stripes, the class being
their orientation (horizontal or vertical, +-9 degrees), under nuisances that random features
mix with it: stripe period, phase, brightness, contrast, a colour tint and noise. The backbone
is a ViT (LayerNorm only, no running statistics), so that only the optimizer's steps change its
features (a BatchNorm network gains k-NN accuracy from its running statistics alone, even with
a zero learning rate). The same DINO run with the LR at 1e-12 ends at 0.8625 and fails the test
(docs/dino.md).
"""
from pathlib import Path

import cv2
import numpy as np
import pytest

from medtrans.apis import (
    build_runner,
    export_backbone,
    knn_evaluate,
    load_config,
    prepare_config,
    prepare_knn_config,
)

pytestmark = pytest.mark.slow

CONFIGS = Path(__file__).resolve().parents[1] / 'data' / 'configs'
DINO_CONFIG = CONFIGS / 'tiny_dino_stripes.py'
KNN_CONFIG = CONFIGS / 'tiny_knn_stripes.py'


def write_stripes(root: Path, per_class: int = 400, size: int = 32, seed: int = 0) -> Path:
    """``root/{horizontal,vertical}/NNNN.png``: sinusoidal stripes, nuisances drawn per image."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[:size, :size].astype(np.float32)
    classes = ('horizontal', 'vertical')
    for name in classes:
        (root / name).mkdir(parents=True)
    for i in range(2 * per_class):
        label = i % 2
        period = np.exp(rng.uniform(np.log(3.0), np.log(8.0)))
        angle = label * np.pi / 2 + rng.uniform(-0.15, 0.15)
        across = y * np.cos(angle) + x * np.sin(angle)
        wave = np.sin(2 * np.pi * across / period + rng.uniform(0, 2 * np.pi))
        grey = rng.uniform(0.3, 0.7) + rng.uniform(0.1, 0.3) * wave
        rgb = grey[..., None] + rng.uniform(-0.15, 0.15, 3) + rng.normal(0, 0.03, (size, size, 3))
        bgr = (np.clip(rgb, 0, 1)[..., ::-1] * 255).round().astype(np.uint8)
        cv2.imwrite(str(root / classes[label] / f'{i:04d}.png'), bgr)
    return root


def knn_recall(data_root: Path, work_dir: Path, checkpoint=None) -> float:
    options = {f'{loader}.dataset.data_root': str(data_root)
               for loader in ('train_dataloader', 'test_dataloader')}
    cfg = prepare_knn_config(load_config(str(KNN_CONFIG), options), str(KNN_CONFIG),
                             work_dir=str(work_dir))
    return knn_evaluate(cfg, checkpoint)['recall']


def test_briefly_trained_dino_beats_random_init_knn(tmp_path):
    data_root = write_stripes(tmp_path / 'stripes')
    random_init = knn_recall(data_root, tmp_path / 'knn_random')

    work_dir = tmp_path / 'dino'
    cfg = prepare_config(
        load_config(str(DINO_CONFIG), {'train_dataloader.dataset.data_root': str(data_root)}),
        str(DINO_CONFIG), work_dir=str(work_dir))
    runner = build_runner(cfg)
    # No running statistics: the features change through the optimizer's steps only.
    assert list(runner.model.backbone.buffers()) == []
    runner.train()
    last = (work_dir / 'last_checkpoint').read_text().strip()
    export_backbone(last, str(tmp_path / 'teacher.pth'))
    dino = knn_recall(data_root, tmp_path / 'knn_dino', str(tmp_path / 'teacher.pth'))

    print(f'k-NN balanced recall: random init {random_init:.4f}, DINO teacher {dino:.4f}')
    assert random_init < 0.9  # random features confuse the nuisances with the orientation
    assert 1 - dino < (1 - random_init) / 5  # DINO's features: at least 5 times fewer errors
