"""Classification scores against scikit-learn and hand-computed values, on real label tables."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    recall_score,
    roc_auc_score,
)

from medtrans.evaluation.functional import (
    IGNORE_TARGET,
    accuracy,
    balanced_recall,
    binary_roc_auc,
    class_mean,
    cohen_kappa,
    per_class_recall,
    per_class_roc_auc,
)

from ..cls_labels import (
    CHEXPERT_COMPETITION,
    logged_warnings,
    noisy_scores,
    read_chexpert_targets,
    read_isic2019_labels,
)


def _grades(n: int = 300, seed: int = 0):
    """APTOS-like data: 5 grades, scores that mostly pick a grade near the true one."""
    labels = np.random.default_rng(seed).integers(0, 5, n)
    return noisy_scores(np.eye(5)[labels], seed), labels


@pytest.fixture(scope='module')
def isic2019(fixtures_dir):
    labels, classes = read_isic2019_labels(fixtures_dir)
    return noisy_scores(np.eye(len(classes))[labels], seed=1), labels, classes


@pytest.fixture(scope='module')
def chexpert(fixtures_dir):
    targets, classes = read_chexpert_targets(fixtures_dir)
    return noisy_scores(targets, seed=2, softmax=False), targets, classes


def test_kappa_hand_computed():
    # Confusion (rows: label, columns: prediction) [[1,0,0],[0,0,1],[0,1,1]], marginals
    # (1,1,2) both ways: sum(w * observed) = 2, sum(w * expected) = 22 / 4, kappa = 7 / 11.
    assert cohen_kappa(np.eye(3)[[0, 2, 2, 1]], [0, 1, 2, 2]) == pytest.approx(7 / 11, rel=1e-12)
    # Grade 2 occurs nowhere but still counts in the distances: sum(w * observed) = 1 + 9,
    # sum(w * expected) = 50 / 4, kappa = 1 - 10 / 12.5 = 0.2. Renumbering the grades
    # present (scikit-learn's default without labels=) would give 0.
    scores, labels = np.eye(4)[[1, 1, 3, 0]], [0, 1, 3, 3]
    assert cohen_kappa(scores, labels) == pytest.approx(0.2, rel=1e-12)
    assert cohen_kappa_score(labels, [1, 1, 3, 0], weights='quadratic') == pytest.approx(0.0)


@pytest.mark.parametrize('weights', ['quadratic', 'linear', None])
def test_kappa_and_accuracy_match_sklearn(weights):
    scores, labels = _grades()
    preds = scores.argmax(axis=1)
    assert cohen_kappa(scores, labels, weights) == cohen_kappa_score(
        labels, preds, labels=range(5), weights=weights)
    assert accuracy(scores, labels) == accuracy_score(labels, preds)
    # Torch tensors (float32 here; any device) give the same numbers.
    assert cohen_kappa(torch.from_numpy(scores), torch.from_numpy(labels), weights) == \
        cohen_kappa(scores, labels, weights)


def test_kappa_perfect_constant_and_undefined():
    labels = np.array([0, 1, 2, 3, 4, 2])
    assert cohen_kappa(np.eye(5)[labels], labels) == 1.0
    # One label, another prediction everywhere: defined (no agreement beyond chance).
    assert cohen_kappa(np.eye(5)[[2, 2, 2]], [0, 0, 0]) == cohen_kappa_score(
        [0, 0, 0], [2, 2, 2], labels=range(5), weights='quadratic') == 0.0
    with logged_warnings() as warnings:
        assert math.isnan(cohen_kappa(np.eye(5)[[3, 3]], [3, 3]))
    assert warnings == ["Cohen's kappa is undefined: every label and every prediction is "
                        'grade 3; reported as NaN.']


def test_argmax_ties_pick_the_lowest_class():
    scores = np.array([[0.4, 0.4, 0.2], [0.1, 0.45, 0.45]])
    assert accuracy(scores, [0, 1]) == 1.0
    assert accuracy(scores, [1, 2]) == 0.0


def test_recall_hand_computed_and_absent_class():
    # Class 0: 2 of 3 right; class 1: 1 of 1; class 2 absent (its one prediction is a miss).
    scores = np.eye(3)[[0, 0, 2, 1]]
    with logged_warnings() as warnings:
        recall = per_class_recall(scores, [0, 0, 0, 1], ['a', 'b', 'c'])
    np.testing.assert_array_equal(recall, [2 / 3, 1.0, np.nan])
    assert warnings == ["Recall is undefined for 'c': absent from the ground truth; reported "
                        'as NaN and left out of the mean recall.']
    assert balanced_recall(scores, [0, 0, 0, 1]) == (2 / 3 + 1) / 2


@pytest.mark.filterwarnings('ignore:y_pred contains classes not in y_true')
def test_recall_on_isic2019_matches_sklearn(isic2019):
    scores, labels, classes = isic2019
    preds = scores.argmax(axis=1)
    with logged_warnings() as warnings:
        recall = per_class_recall(scores, labels, classes)
    present = np.arange(8)  # UNK (index 8) never occurs in the ISIC 2019 training labels.
    np.testing.assert_array_equal(
        recall[present], recall_score(labels, preds, labels=present, average=None))
    assert np.isnan(recall[8]) and "'UNK'" in warnings[0]
    assert class_mean(recall) == (balanced_accuracy_score(labels, preds), 8)
    assert balanced_recall(scores, labels) == balanced_accuracy_score(labels, preds)


def test_roc_auc_matches_sklearn_without_ignored_entries(chexpert):
    scores, targets, _ = chexpert
    targets = np.where(targets == IGNORE_TARGET, 0, targets)  # U-Zeros
    defined = (targets == 1).any(axis=0)
    auc = per_class_roc_auc(scores, targets)
    np.testing.assert_array_equal(
        auc[defined], roc_auc_score(targets[:, defined], scores[:, defined], average=None))
    assert class_mean(auc) == (
        roc_auc_score(targets[:, defined], scores[:, defined], average='macro'), defined.sum())


def test_roc_auc_u_ignore_on_chexpert_labels(chexpert):
    scores, targets, classes = chexpert
    with logged_warnings() as warnings:
        auc = per_class_roc_auc(scores, targets, classes)
    for c, name in enumerate(classes):
        scored = targets[:, c] != IGNORE_TARGET
        if name == 'Pneumonia':  # 0 positives, 72 negatives, 4 uncertain in this sample
            assert np.isnan(auc[c])
        else:
            assert auc[c] == roc_auc_score(targets[scored, c], scores[scored, c]), name
    assert warnings == ["ROC-AUC of 'Pneumonia' is undefined: no positive sample among its 72 "
                        'scored ones (4 ignored); reported as NaN and left out of the mean.']
    assert class_mean(auc) == (np.mean(auc[~np.isnan(auc)]), 13)
    competition = [classes.index(name) for name in CHEXPERT_COMPETITION]
    assert class_mean(auc, CHEXPERT_COMPETITION, classes) == (np.mean(auc[competition]), 5)
    assert class_mean(auc, competition) == class_mean(auc, CHEXPERT_COMPETITION, classes)


def test_roc_auc_all_ignored_or_one_sided_classes():
    scores = np.array([[0.9, 0.2, 0.5], [0.1, 0.8, 0.4], [0.6, 0.3, 0.7]])
    targets = np.array([[1, -1, 1], [0, -1, 1], [1, -1, -1]])
    with logged_warnings() as warnings:
        auc = per_class_roc_auc(scores, targets)
    np.testing.assert_array_equal(auc, [1.0, np.nan, np.nan])
    assert warnings == [
        'ROC-AUC of class 1 is undefined: all its 3 samples are ignored; reported as NaN and '
        'left out of the mean.',
        'ROC-AUC of class 2 is undefined: no negative sample among its 2 scored ones '
        '(1 ignored); reported as NaN and left out of the mean.'
    ]
    assert class_mean(auc) == (1.0, 1)
    with logged_warnings():
        assert class_mean(auc, [1, 2]) == (pytest.approx(math.nan, nan_ok=True), 0)


def test_roc_auc_ties_hand_computed_and_perfect():
    # Positives 0.8, 0.4; negatives 0.4, 0.1: pairs ranked right 1, 1, 1 and one tie (1/2).
    targets = np.array([[1], [1], [0], [0]])
    scores = np.array([[0.8], [0.4], [0.4], [0.1]])
    assert per_class_roc_auc(scores, targets)[0] == 3.5 / 4 == roc_auc_score(targets, scores)
    # All scores tied: a real 0.5, as scikit-learn gives it.
    assert per_class_roc_auc(np.full((4, 1), 0.3), targets)[0] == 0.5
    assert per_class_roc_auc(1 - targets, targets)[0] == 0.0
    assert per_class_roc_auc(targets * 0.9, targets)[0] == 1.0


def test_binary_roc_auc():
    labels = np.random.default_rng(3).integers(0, 2, 100)
    scores = noisy_scores(np.eye(2)[labels], seed=3)
    assert binary_roc_auc(scores, labels) == roc_auc_score(labels, scores[:, 1])
    with logged_warnings() as warnings:
        assert math.isnan(binary_roc_auc(scores, np.zeros(100, int), ['normal', 'mass']))
    assert warnings[0].startswith("ROC-AUC of 'mass' is undefined: no positive sample")


def test_class_subsets_refuse_bad_references():
    values = np.array([0.7, 0.8, np.nan])
    with pytest.raises(ValueError, match="Unknown class 'd': the classes are a, b, c"):
        class_mean(values, ['a', 'd'], ['a', 'b', 'c'])
    with pytest.raises(ValueError, match="Class 'a' is given by name but no class names"):
        class_mean(values, ['a'])
    with pytest.raises(ValueError, match=r'Class index 3 is outside \[0, 3\)'):
        class_mean(values, [3])
    with pytest.raises(ValueError, match='names a class twice'):
        class_mean(values, [0, 'a'], ['a', 'b', 'c'])
    with pytest.raises(ValueError, match='The class subset is empty'):
        class_mean(values, [])


def test_bad_inputs_are_refused():
    scores = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match=r'labels hold 3 outside \[0, 3\)'):
        accuracy(scores, [0, 3])
    with pytest.raises(ValueError, match=r'labels must have shape \(2,\)'):
        accuracy(scores, [0, 1, 2])
    with pytest.raises(ValueError, match='labels must be integer class indices'):
        balanced_recall(scores, [0.5, 1])
    with pytest.raises(ValueError, match=r'scores hold NaN or infinite values \(samples 1\)'):
        cohen_kappa(np.array([[0.5, 0.5], [np.nan, 1]]), [0, 1])
    with pytest.raises(ValueError, match=r'scores must have shape \(N, C\)'):
        cohen_kappa(np.zeros((0, 3)), [])
    with pytest.raises(ValueError, match=r'targets hold 0.5: expected 1 \(positive\), 0'):
        per_class_roc_auc(scores, [[0, 1, 0.5], [1, 0, 0]])
    with pytest.raises(ValueError, match='weights must be one of'):
        cohen_kappa(scores, [0, 1], weights='cubic')
    with pytest.raises(ValueError, match='class_names lists 2 classes but the scores have 3'):
        per_class_recall(scores, [0, 1], ['a', 'b'])
