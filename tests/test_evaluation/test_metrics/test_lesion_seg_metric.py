"""LesionSegMetric through MMEngine's Evaluator, against scikit-learn, on real ISIC 2018 masks."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.structures import SegDataSample

from medtrans.evaluation import LesionSegMetric
from medtrans.registry import METRICS

from ..isic_masks import sklearn_pooled_iou, sklearn_scores


def _sample(name: str, pred: np.ndarray, target: np.ndarray) -> SegDataSample:
    sample = SegDataSample(metainfo=dict(img_path=f'data/isic/{name}', ori_shape=target.shape))
    sample.pred_sem_seg = PixelData(data=torch.from_numpy(pred.astype(np.int64))[None])
    sample.gt_sem_seg = PixelData(data=torch.from_numpy(target.astype(np.int64))[None])
    return sample


def _evaluate(evaluator: Evaluator, pairs, batch_size: int = 3, size: int = 0) -> dict:
    for start in range(0, len(pairs), batch_size):
        batch = [_sample(*pair) for pair in pairs[start:start + batch_size]]
        evaluator.process(data_samples=batch, data_batch=None)
    return evaluator.evaluate(size or len(pairs))


def _sklearn_metrics(pairs, threshold: float = 0.65) -> dict:
    preds, targets = [p for _, p, _ in pairs], [t for _, _, t in pairs]
    reference = np.array([sklearn_scores(p, t) for p, t in zip(preds, targets)])
    jaccard, dice = reference[:, 0], reference[:, 1]
    return {
        'IoU': sklearn_pooled_iou(preds, targets),
        'Jaccard': jaccard.mean(),
        'thresholded_Jaccard': np.where(jaccard >= threshold, jaccard, 0.0).mean(),
        'Dice': dice.mean(),
    }


def _assert_metrics(metrics: dict, expected: dict) -> None:
    assert set(metrics) == set(expected)
    for key, value in metrics.items():
        assert type(value) is float and 0.0 <= value <= 1.0, key
        assert value == pytest.approx(expected[key], rel=1e-12), key


def test_registered_and_built_from_config():
    with DefaultScope.overwrite_default_scope('medtrans'):
        metric = METRICS.build(dict(type='LesionSegMetric', threshold=0.5, ignore_index=9))
    assert isinstance(metric, LesionSegMetric)
    # No prefix ('' rather than MMEngine's None, which warns at every run): names stay 'IoU'.
    assert (metric.threshold, metric.ignore_index, metric.prefix) == (0.5, 9, '')


@pytest.mark.parametrize('ignore_index', [0, 1])
def test_ignore_index_that_is_a_binary_label_is_refused(ignore_index):
    match = f'ignore_index={ignore_index} is a label of the binary masks'
    with pytest.raises(ValueError, match=match):
        LesionSegMetric(ignore_index=ignore_index)
    with DefaultScope.overwrite_default_scope('medtrans'), pytest.raises(ValueError, match=match):
        METRICS.build(dict(type='LesionSegMetric', ignore_index=ignore_index))


def test_evaluator_matches_sklearn_on_real_masks(isic_pairs):
    with DefaultScope.overwrite_default_scope('medtrans'):
        evaluator = Evaluator([dict(type='LesionSegMetric')])
    metrics = _evaluate(evaluator, isic_pairs)
    _assert_metrics(metrics, _sklearn_metrics(isic_pairs))


def test_iou_is_mmseg_lesion_class_iou(isic_pairs):
    # mmseg's IoUMetric pools each class over the split too; its lesion-class IoU (not its
    # mIoU, which averages in the background) is the study's number.
    areas = [
        IoUMetric.intersect_and_union(torch.from_numpy(p), torch.from_numpy(t), 2, 255)
        for _, p, t in isic_pairs
    ]
    totals = [sum(area[i] for area in areas) for i in range(4)]
    mmseg_iou = IoUMetric.total_area_to_metrics(*totals, metrics=['mIoU'])['IoU']
    metrics = _evaluate(Evaluator([LesionSegMetric()]), isic_pairs)
    # mmseg counts in float32.
    assert metrics['IoU'] == pytest.approx(float(mmseg_iou[1]), rel=1e-6)


def test_ignore_index_threshold_and_prefix(isic_pairs):
    pairs = []
    for name, pred, target in isic_pairs:
        target = np.where(np.arange(target.shape[0])[:, None] % 4 == 0, 7, target)
        pairs.append((name, pred, target.astype(np.uint8)))
    evaluator = Evaluator(
        [dict(type='medtrans.LesionSegMetric', ignore_index=7, threshold=0.8, prefix='lesion')])
    metrics = _evaluate(evaluator, pairs, batch_size=4)

    reference = _sklearn_metrics([(n, p, np.where(t == 7, 255, t)) for n, p, t in pairs], 0.8)
    _assert_metrics(metrics, {f'lesion/{k}': v for k, v in reference.items()})


def test_empty_prediction_and_target_scores_one():
    empty = np.zeros((16, 16), dtype=np.uint8)
    lesion = empty.copy()
    lesion[4:12, 4:12] = 1
    pairs = [('empty.png', empty, empty), ('lesion.png', lesion, lesion)]
    metrics = _evaluate(Evaluator([LesionSegMetric()]), pairs)
    assert metrics == {'IoU': 1.0, 'Jaccard': 1.0, 'thresholded_Jaccard': 1.0, 'Dice': 1.0}


def test_process_keeps_only_three_counts_per_image(isic_pairs):
    metric = LesionSegMetric()
    metric.process(None, [_sample(*pair).to_dict() for pair in isic_pairs[:4]])
    assert len(metric.results) == 4
    assert all(len(r) == 3 and all(type(c) is int for c in r) for r in metric.results)


def test_bad_labels_name_the_image(isic_pairs):
    name, pred, target = isic_pairs[0]
    multi_class = target.copy()
    multi_class[0, 0] = 2
    evaluator = Evaluator([LesionSegMetric()])
    with pytest.raises(ValueError, match=rf'data/isic/{name}: target holds labels 2 outside'):
        evaluator.process([_sample(name, pred, multi_class)])
    with pytest.raises(ValueError, match=rf'data/isic/{name}: pred holds labels 2 outside'):
        evaluator.process([_sample(name, multi_class, target)])


def test_missing_ground_truth_and_empty_split_are_refused(isic_pairs):
    name, pred, _ = isic_pairs[0]
    sample = SegDataSample(metainfo=dict(img_path=name))
    sample.pred_sem_seg = PixelData(data=torch.from_numpy(pred)[None])
    evaluator = Evaluator([LesionSegMetric()])
    with pytest.raises(ValueError, match=rf'{name}: the data sample has no "gt_sem_seg"'):
        evaluator.process([sample])
    with pytest.raises(ValueError, match='received no images'):
        evaluator.evaluate(0)
    with pytest.raises(ValueError, match='threshold must lie in'):
        LesionSegMetric(threshold=1.5)


def _distributed_worker(rank: int, world_size: int, init_file: str, collect_dir: str,
                        pairs: list, out_file: str) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world_size)
    try:
        evaluator = Evaluator([LesionSegMetric(collect_dir=collect_dir)])
        # Each rank sees an interleaved share, as a DistributedSampler would give it; the
        # evaluator is told the size of the whole split.
        metrics = _evaluate(evaluator, pairs[rank::world_size], batch_size=2, size=len(pairs))
        if rank == 0:
            torch.save(metrics, out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_distributed_collection_equals_single_process(isic_pairs, tmp_path: Path):
    out_file = tmp_path / 'metrics.pt'
    mp.spawn(
        _distributed_worker,
        args=(2, str(tmp_path / 'init'), str(tmp_path / 'collect'), isic_pairs, str(out_file)),
        nprocs=2)
    single = _evaluate(Evaluator([LesionSegMetric()]), isic_pairs)
    assert torch.load(out_file, weights_only=True) == single


def test_the_default_threshold_is_the_isic_challenges(repo_root):
    """The ISIC 2018 Task 1 score zeroes an image's Jaccard below 0.65: an image at 0.62 counts
    as 0 (at a threshold of 0.6 it would count as 0.62, and the score would be 0.76, not 0.45)."""
    from mmengine.config import Config

    from medtrans.evaluation.functional import (
        thresholded_jaccard,
        thresholded_jaccard_from_counts,
    )

    # 100 predicted pixels each; the lesion holds 62 and 90 of them: Jaccard 0.62 and 0.90.
    targets = [np.arange(100).reshape(10, 10) < n for n in (62, 90)]
    preds = [np.ones((10, 10), bool)] * 2
    challenge = (0.0 + 0.9) / 2
    assert thresholded_jaccard_from_counts([62, 90], [38, 10], [0, 0]) == challenge
    assert thresholded_jaccard(preds, targets) == challenge
    # The metric as the configs build it (the headline's evaluator sets no threshold).
    evaluator = Config.fromfile(repo_root / 'configs' / 'deeplab3_deit_s_isic2018.py').val_evaluator
    with DefaultScope.overwrite_default_scope('medtrans'):
        metric = Evaluator(METRICS.build(evaluator))
    pairs = [(f'ISIC_{i}.jpg', p, t) for i, (p, t) in enumerate(zip(preds, targets))]
    assert _evaluate(metric, pairs)['thresholded_Jaccard'] == challenge
