"""The binary segmentation scores against scikit-learn, on real ISIC 2018 masks."""
import re

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix

from medtrans.evaluation.functional import (
    binary_confusion,
    confusion_counts,
    foreground_iou,
    foreground_iou_from_counts,
    mean_dice,
    mean_dice_from_counts,
    per_image_dice,
    per_image_jaccard,
    per_image_jaccard_from_counts,
    thresholded_jaccard,
    thresholded_jaccard_from_counts,
)

from ..isic_masks import perturb, read_isic_mask, sklearn_pooled_iou, sklearn_scores


def _split(pairs):
    return [p for _, p, _ in pairs], [t for _, _, t in pairs]


def _sklearn_confusion(pred, target):
    tn, fp, fn, tp = confusion_matrix(target.reshape(-1), pred.reshape(-1), labels=[0, 1]).ravel()
    return int(tp), int(fp), int(fn), int(tn)


def test_binary_confusion_matches_sklearn(isic_pairs):
    for name, pred, target in isic_pairs:
        assert binary_confusion(pred, target) == _sklearn_confusion(pred, target), name


def test_scores_match_sklearn_on_real_masks(isic_pairs):
    preds, targets = _split(isic_pairs)
    reference = np.array([sklearn_scores(p, t) for p, t in zip(preds, targets)])
    ref_jaccard, ref_dice = reference[:, 0], reference[:, 1]
    # The perturbations must leave images on both sides of the ISIC threshold, or the
    # thresholded score would not be tested.
    assert (ref_jaccard < 0.65).any() and (ref_jaccard >= 0.65).any()

    np.testing.assert_allclose(per_image_jaccard(preds, targets), ref_jaccard, rtol=1e-12)
    np.testing.assert_allclose(per_image_dice(preds, targets), ref_dice, rtol=1e-12)
    assert mean_dice(preds, targets) == pytest.approx(ref_dice.mean(), rel=1e-12)
    assert foreground_iou(preds, targets) == pytest.approx(
        sklearn_pooled_iou(preds, targets), rel=1e-12)
    expected_isic = np.where(ref_jaccard >= 0.65, ref_jaccard, 0.0).mean()
    assert thresholded_jaccard(preds, targets) == pytest.approx(expected_isic, rel=1e-12)


def test_pooled_iou_differs_from_mean_jaccard(isic_pairs):
    # The study reports the pooled IoU; it weights large lesions more than the per-image mean.
    preds, targets = _split(isic_pairs)
    assert abs(foreground_iou(preds, targets) - per_image_jaccard(preds, targets).mean()) > 1e-3


def test_full_size_mask_matches_sklearn(isic_mask_paths):
    path = next(p for p in isic_mask_paths if p.name == 'ISIC_0002438_segmentation.png')
    target = read_isic_mask(path)
    assert target.shape == (2016, 3024)
    pred = perturb(target, 'shift_erode_flip', seed=0)
    assert binary_confusion(pred, target) == _sklearn_confusion(pred, target)
    ref_jaccard, ref_dice = sklearn_scores(pred, target)
    assert per_image_jaccard([pred], [target])[0] == pytest.approx(ref_jaccard, rel=1e-12)
    assert mean_dice([pred], [target]) == pytest.approx(ref_dice, rel=1e-12)


def test_ignored_pixels_are_left_out(isic_pairs):
    rng = np.random.default_rng(0)
    preds, targets = [], []
    for _, pred, target in isic_pairs:
        target = target.copy()
        target[:, : target.shape[1] // 3] = 255
        pred = pred.copy()
        pred[target == 255] = rng.integers(0, 2, size=int((target == 255).sum()))
        preds.append(pred)
        targets.append(target)

    reference = np.array([sklearn_scores(p, t) for p, t in zip(preds, targets)])
    np.testing.assert_allclose(per_image_jaccard(preds, targets), reference[:, 0], rtol=1e-12)
    np.testing.assert_allclose(per_image_dice(preds, targets), reference[:, 1], rtol=1e-12)
    assert foreground_iou(preds, targets) == pytest.approx(
        sklearn_pooled_iou(preds, targets), rel=1e-12)

    # Whatever is predicted at ignored pixels, 0, 1 or ignore_index itself, changes nothing.
    tp, fp, fn, tn = binary_confusion(preds[0], targets[0])
    assert tp + fp + fn + tn == int((targets[0] != 255).sum())
    for fill in (0, 1, 255):
        other = preds[0].copy()
        other[targets[0] == 255] = fill
        assert binary_confusion(other, targets[0]) == (tp, fp, fn, tn)


def test_ignore_index_in_prediction_on_scored_pixel_is_refused():
    target = np.array([[0, 1], [1, 255]], dtype=np.uint8)
    pred = np.array([[0, 255], [1, 0]], dtype=np.uint8)
    with pytest.raises(ValueError, match='ignore_index=255 at pixels the target scores'):
        binary_confusion(pred, target)


def test_custom_and_disabled_ignore_index():
    target = np.array([0, 1, 1, 9], dtype=np.uint8)
    pred = np.array([1, 1, 0, 0], dtype=np.uint8)
    assert binary_confusion(pred, target, ignore_index=9) == (1, 1, 1, 0)
    with pytest.raises(ValueError, match=r'target holds labels 9 outside \{0, 1\}'):
        binary_confusion(pred, target, ignore_index=None)
    assert binary_confusion(pred, target[:3].tolist() + [0], ignore_index=None) == (1, 1, 1, 1)


def test_empty_prediction_and_target_score_one():
    empty = np.zeros((8, 8), dtype=np.uint8)
    lesion = empty.copy()
    lesion[2:6, 2:6] = 1
    preds, targets = [empty, empty, lesion], [empty, lesion, lesion]
    reference = np.array([sklearn_scores(p, t) for p, t in zip(preds, targets)])
    np.testing.assert_array_equal(reference, [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(per_image_jaccard(preds, targets), reference[:, 0])
    np.testing.assert_array_equal(per_image_dice(preds, targets), reference[:, 1])
    assert thresholded_jaccard(preds, targets) == pytest.approx(2 / 3)
    assert foreground_iou([empty, empty], [empty, empty]) == 1.0
    assert foreground_iou(preds, targets) == pytest.approx(16 / 32)


def test_thresholded_jaccard_at_the_boundary():
    # 13 / (13 + 7) is exactly the float 0.65: it counts; 1299 / 2000 just below it is 0.
    at = (np.ones(20, np.uint8), np.array([1] * 13 + [0] * 7, np.uint8))
    below = (np.ones(2000, np.uint8), np.array([1] * 1299 + [0] * 701, np.uint8))
    assert per_image_jaccard([at[0]], [at[1]])[0] == 0.65
    assert thresholded_jaccard([at[0]], [at[1]]) == 0.65
    assert thresholded_jaccard([below[0]], [below[1]]) == 0.0
    assert thresholded_jaccard([at[0], below[0]], [at[1], below[1]]) == pytest.approx(0.65 / 2)
    assert thresholded_jaccard([below[0]], [below[1]], threshold=0.6495) == pytest.approx(0.6495)
    assert thresholded_jaccard_from_counts([13, 1299], [7, 701], [0, 0], threshold=0.0) == (
        pytest.approx((0.65 + 0.6495) / 2))
    with pytest.raises(ValueError, match='threshold must lie in'):
        thresholded_jaccard([at[0]], [at[1]], threshold=65)


def test_labels_other_than_binary_are_refused():
    good = np.zeros((4, 4), dtype=np.uint8)
    multi = good.copy()
    multi[0, :3] = [1, 2, 3]
    with pytest.raises(ValueError, match=r'target holds labels 2, 3 outside \{0, 1, 255\}'):
        binary_confusion(good, multi)
    with pytest.raises(ValueError, match=r'pred holds labels 2, 3 outside'):
        binary_confusion(multi, good)
    with pytest.raises(ValueError, match=r'^image 1: target holds labels 2, 3'):
        confusion_counts([good, good], [good, multi])
    with pytest.raises(ValueError, match='labels 0.5'):
        binary_confusion(np.full((2, 2), 0.5), np.zeros((2, 2)))


def test_torch_tensors_and_numpy_arrays_agree(isic_pairs):
    _, pred, target = isic_pairs[1]
    expected = binary_confusion(pred, target)
    stacked = (torch.from_numpy(pred)[None], torch.from_numpy(target)[None])
    assert binary_confusion(*stacked) == expected
    assert binary_confusion(torch.from_numpy(pred).bool(), target.astype(np.int64)) == expected


def test_counts_and_mask_forms_are_one_implementation(isic_pairs):
    preds, targets = _split(isic_pairs)
    counts = confusion_counts(preds, targets)
    assert counts.shape == (len(preds), 4) and counts.dtype == np.int64
    tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
    assert foreground_iou_from_counts(tp, fp, fn) == foreground_iou(preds, targets)
    np.testing.assert_array_equal(per_image_jaccard_from_counts(tp, fp, fn),
                                  per_image_jaccard(preds, targets))
    assert mean_dice_from_counts(list(tp), list(fp), list(fn)) == mean_dice(preds, targets)


def test_malformed_inputs_are_refused():
    mask = np.zeros((4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match=r'same shape, got \(4, 4\) and \(4, 5\)'):
        binary_confusion(mask, np.zeros((4, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match='Got 2 predictions for 1 targets'):
        foreground_iou([mask, mask], [mask])
    with pytest.raises(ValueError, match='needs at least one image'):
        foreground_iou([], [])
    with pytest.raises(ValueError, match='needs at least one image'):
        mean_dice_from_counts([], [], [])
    with pytest.raises(ValueError, match='one count per image'):
        per_image_jaccard_from_counts([1, 2], [0], [0, 0])
    with pytest.raises(ValueError, match='non-negative'):
        foreground_iou_from_counts([1], [-1], [0])


@pytest.mark.parametrize('ignore_index', [0, 1, np.uint8(1), True])
def test_ignore_index_that_is_a_binary_label_is_refused(ignore_index):
    # ignore_index=1 would drop every lesion pixel and score every image 1.0.
    target = np.array([0, 1, 1, 0], dtype=np.uint8)
    pred = np.array([1, 1, 0, 0], dtype=np.uint8)
    match = re.escape(f'ignore_index={ignore_index!r} is a label of the binary masks')
    with pytest.raises(ValueError, match=match):
        binary_confusion(pred, target, ignore_index=ignore_index)
    for score in (foreground_iou, per_image_jaccard, per_image_dice, mean_dice,
                  thresholded_jaccard, confusion_counts):
        with pytest.raises(ValueError, match=f'^{match}'):
            score([pred], [target], ignore_index=ignore_index)


def test_negative_stride_arrays_score_like_their_copies(isic_pairs):
    # np.flip gives views with negative strides, which torch.as_tensor cannot take.
    for name, pred, target in isic_pairs[:3]:
        for flip in (lambda a: np.flip(a), lambda a: a[::-1, ::-2], lambda a: np.rot90(a)):
            p, t = flip(pred), flip(target)
            assert min(p.strides) < 0
            assert binary_confusion(p, t) == _sklearn_confusion(p.copy(), t.copy()), name
            assert binary_confusion(torch.from_numpy(p.copy()), t) == binary_confusion(
                p.copy(), t.copy())
    preds, targets = _split(isic_pairs)
    assert foreground_iou([np.flip(p) for p in preds], [np.flip(t) for t in targets]) == (
        foreground_iou(preds, targets))
