"""Classification scores, as pure functions computed with scikit-learn.

Inputs, numpy arrays or torch tensors (any device):

* ``scores``: shape (N, C), one row per sample: softmax probabilities for a single-label task
  (a binary task is two classes), sigmoid probabilities for a multi-label one. ROC-AUC only
  ranks them, so logits give the same AUC.
* ``labels``: shape (N,), the class index in [0, C) of each sample (single-label).
* ``targets``: shape (N, C), multi-label ground truth: 1 positive, 0 negative,
  :data:`IGNORE_TARGET` (-1) not scored (CheXpert's uncertain labels under the U-Ignore policy).

The predicted class of a single-label sample is the argmax of its scores (the lowest index
among tied maxima).

A score that is undefined on the given data is NaN, with a warning in the current MMEngine
logger naming the class and the reason, and never a stand-in value (a ROC-AUC of 0.5, a recall
of 0): a class without positive or without negative samples has no ROC-AUC, a class absent from
the ground truth has no recall. :func:`class_mean` averages per-class values over the classes
where they are defined and says how many those were.
"""
import logging
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log
from sklearn.metrics import accuracy_score, cohen_kappa_score, recall_score, roc_auc_score

__all__ = [
    'IGNORE_TARGET', 'accuracy', 'cohen_kappa', 'per_class_recall', 'balanced_recall',
    'per_class_roc_auc', 'binary_roc_auc', 'class_mean'
]

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]
ClassRef = Union[int, str]

IGNORE_TARGET = -1
"""Multi-label target value of an entry that is not scored (U-Ignore)."""

_KAPPA_WEIGHTS = (None, 'linear', 'quadratic')


def _to_numpy(value: ArrayLike) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        # float64 holds float16/bfloat16/float32 values exactly; numpy has no bfloat16.
        return (value.double() if value.is_floating_point() else value).numpy()
    return np.asarray(value)


def _check_scores(scores: ArrayLike, min_classes: int = 1) -> np.ndarray:
    scores = _to_numpy(scores).astype(np.float64, copy=False)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] < min_classes:
        raise ValueError(f'scores must have shape (N, C) with N >= 1 and C >= {min_classes}, '
                         f'got {scores.shape}.')
    if not np.isfinite(scores).all():
        rows = np.flatnonzero(~np.isfinite(scores).all(axis=1))
        raise ValueError(f'scores hold NaN or infinite values (samples {_summary(rows)}).')
    return scores


def _check_labels(labels: ArrayLike, num_samples: int, num_classes: int) -> np.ndarray:
    labels = _to_numpy(labels)
    if labels.shape != (num_samples, ):
        raise ValueError(f'labels must have shape ({num_samples},), one class index per row '
                         f'of scores, got {labels.shape}.')
    if not np.issubdtype(labels.dtype, np.integer):
        integral = np.issubdtype(labels.dtype, np.floating) and (labels == np.round(labels)).all()
        if not integral:
            raise ValueError(f'labels must be integer class indices, got {labels.dtype} values '
                             f'{_summary(np.unique(labels))}.')
    labels = labels.astype(np.int64)
    outside = (labels < 0) | (labels >= num_classes)
    if outside.any():
        raise ValueError(f'labels hold {_summary(np.unique(labels[outside]))} outside '
                         f'[0, {num_classes}) (scores have {num_classes} classes).')
    return labels


def _check_targets(targets: ArrayLike, shape: Tuple[int, int]) -> np.ndarray:
    targets = _to_numpy(targets).astype(np.float64, copy=False)
    if targets.shape != shape:
        raise ValueError(f'targets must have the shape of scores {shape}, got {targets.shape}.')
    invalid = ~np.isin(targets, (0, 1, IGNORE_TARGET))
    if invalid.any():
        raise ValueError(f'targets hold {_summary(np.unique(targets[invalid]))}: expected 1 '
                         f'(positive), 0 (negative) or {IGNORE_TARGET} (ignored).')
    return targets


def _summary(values: np.ndarray, limit: int = 10) -> str:
    """List at most ``limit`` values, for an error message."""
    shown = ', '.join(str(v) for v in values[:limit].tolist())
    return shown + (', ...' if len(values) > limit else '')


def _names(class_names: Optional[Sequence[str]], num_classes: int) -> List[str]:
    if class_names is None:
        return [f'class {i}' for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f'class_names lists {len(class_names)} classes but the scores have '
                         f'{num_classes}.')
    return [f"'{name}'" for name in class_names]


def _warn(message: str) -> None:
    print_log(message, logger='current', level=logging.WARNING)


def accuracy(scores: ArrayLike, labels: ArrayLike) -> float:
    """Share of samples whose argmax class is their label.

    Args:
        scores (np.ndarray | torch.Tensor): Class scores, shape (N, C).
        labels (np.ndarray | torch.Tensor): Class indices, shape (N,).

    Returns:
        float: ``sklearn.metrics.accuracy_score(labels, scores.argmax(1))``.
    """
    scores = _check_scores(scores, min_classes=2)
    labels = _check_labels(labels, *scores.shape)
    return float(accuracy_score(labels, scores.argmax(axis=1)))


def cohen_kappa(scores: ArrayLike,
                labels: ArrayLike,
                weights: Optional[str] = 'quadratic') -> float:
    """Cohen's kappa between the labels and the argmax classes, for ordinal grades.

    The weight of a disagreement between grades ``i`` and ``j`` is ``(i - j) ** 2``
    (``'quadratic'``, the APTOS 2019 score), ``|i - j|`` (``'linear'``) or 1 (None), with
    grades numbered 0 .. C-1 by their index in the scores: a grade absent from both labels and
    predictions still counts in the distances (scikit-learn's ``labels=range(C)``; without it,
    scikit-learn would renumber the grades present).

    Args:
        scores (np.ndarray | torch.Tensor): Grade scores, shape (N, C).
        labels (np.ndarray | torch.Tensor): Grades, shape (N,).
        weights (str, optional): 'quadratic', 'linear' or None. Defaults to 'quadratic'.

    Returns:
        float: ``sklearn.metrics.cohen_kappa_score(labels, scores.argmax(1),
        labels=range(C), weights=weights)``, in [-1, 1]; NaN (with a warning) when every label
        and every prediction is the same grade, where kappa is 0 / 0.
    """
    if weights not in _KAPPA_WEIGHTS:
        raise ValueError(f'weights must be one of {_KAPPA_WEIGHTS}, got {weights!r}.')
    scores = _check_scores(scores, min_classes=2)
    labels = _check_labels(labels, *scores.shape)
    preds = scores.argmax(axis=1)
    grades = np.unique(np.concatenate([labels, preds]))
    if grades.size == 1:
        _warn(f"Cohen's kappa is undefined: every label and every prediction is grade "
              f'{grades[0]}; reported as NaN.')
        return float('nan')
    return float(
        cohen_kappa_score(labels, preds, labels=np.arange(scores.shape[1]), weights=weights))


def per_class_recall(scores: ArrayLike,
                     labels: ArrayLike,
                     class_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Recall of each class: the share of its samples whose argmax class is it.

    Args:
        scores (np.ndarray | torch.Tensor): Class scores, shape (N, C).
        labels (np.ndarray | torch.Tensor): Class indices, shape (N,).
        class_names (Sequence[str], optional): Names of the C classes, for the warnings.
            Defaults to None (classes named by index).

    Returns:
        np.ndarray: Shape (C,), float64: ``sklearn.metrics.recall_score(labels, preds,
        labels=range(C), average=None)`` for the classes present in ``labels``, NaN (with a
        warning naming them) for the classes absent from them.
    """
    scores = _check_scores(scores, min_classes=2)
    labels = _check_labels(labels, *scores.shape)
    num_classes = scores.shape[1]
    names = _names(class_names, num_classes)
    recall = recall_score(labels, scores.argmax(axis=1), labels=np.arange(num_classes),
                          average=None, zero_division=0).astype(np.float64)
    absent = np.bincount(labels, minlength=num_classes) == 0
    if absent.any():
        listed = ', '.join(names[c] for c in np.flatnonzero(absent))
        _warn(f'Recall is undefined for {listed}: absent from the ground truth; reported as '
              'NaN and left out of the mean recall.')
    recall[absent] = np.nan
    return recall


def balanced_recall(scores: ArrayLike,
                    labels: ArrayLike,
                    class_names: Optional[Sequence[str]] = None) -> float:
    """Mean per-class recall over the classes present in the ground truth.

    This is scikit-learn's ``balanced_accuracy_score``, the ISIC 2019 challenge score ("mean
    per-class recall"). A class absent from ``labels`` (ISIC 2019's UNK) is left out of the
    mean; predictions of it still count as misses of the true class.

    Args:
        scores (np.ndarray | torch.Tensor): Class scores, shape (N, C).
        labels (np.ndarray | torch.Tensor): Class indices, shape (N,).
        class_names (Sequence[str], optional): Names of the C classes, for the warnings.
            Defaults to None (classes named by index).

    Returns:
        float: The mean of :func:`per_class_recall` over the classes it defines.
    """
    return class_mean(per_class_recall(scores, labels, class_names))[0]


def per_class_roc_auc(scores: ArrayLike,
                      targets: ArrayLike,
                      class_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """ROC-AUC of each class against all others (multi-label, or one-vs-rest).

    Entries whose target is :data:`IGNORE_TARGET` are left out of their class only.

    Args:
        scores (np.ndarray | torch.Tensor): Class scores, shape (N, C).
        targets (np.ndarray | torch.Tensor): Shape (N, C): 1 positive, 0 negative,
            :data:`IGNORE_TARGET` not scored. For a single-label task, the one-hot labels.
        class_names (Sequence[str], optional): Names of the C classes, for the warnings.
            Defaults to None (classes named by index).

    Returns:
        np.ndarray: Shape (C,), float64: for class ``c``, ``sklearn.metrics.roc_auc_score``
        of its scored entries; NaN (with a warning naming the class) where they hold no
        positive or no negative.
    """
    scores = _check_scores(scores)
    targets = _check_targets(targets, scores.shape)
    return _roc_auc_columns(scores, targets, _names(class_names, scores.shape[1]))


def _roc_auc_columns(scores: np.ndarray, targets: np.ndarray, names: List[str]) -> np.ndarray:
    """ROC-AUC of each column of checked scores and targets; ``names`` label the warnings."""
    auc = np.full(scores.shape[1], np.nan)
    for c, name in enumerate(names):
        scored = targets[:, c] != IGNORE_TARGET
        positives = int((targets[scored, c] == 1).sum())
        negatives = int(scored.sum()) - positives
        if positives == 0 or negatives == 0:
            if positives == negatives == 0:
                reason = f'all its {len(scored)} samples are ignored'
            else:
                reason = (f'no {"positive" if positives == 0 else "negative"} sample among its '
                          f'{positives + negatives} scored ones ({int((~scored).sum())} ignored)')
            _warn(f'ROC-AUC of {name} is undefined: {reason}; reported as NaN and left out of '
                  'the mean.')
            continue
        auc[c] = roc_auc_score(targets[scored, c], scores[scored, c])
    return auc


def binary_roc_auc(scores: ArrayLike,
                   labels: ArrayLike,
                   class_names: Optional[Sequence[str]] = None) -> float:
    """ROC-AUC of a binary single-label task, scored by the probability of class 1.

    Args:
        scores (np.ndarray | torch.Tensor): Softmax scores of the two classes, shape (N, 2).
        labels (np.ndarray | torch.Tensor): Labels in {0, 1}, shape (N,).
        class_names (Sequence[str], optional): Names of the two classes, for the warning.
            Defaults to None.

    Returns:
        float: ``sklearn.metrics.roc_auc_score(labels, scores[:, 1])``; NaN (with a warning)
        when ``labels`` hold one class only.
    """
    scores = _check_scores(scores, min_classes=2)
    if scores.shape[1] != 2:
        raise ValueError(f'binary_roc_auc needs the scores of 2 classes, got {scores.shape[1]}.')
    labels = _check_labels(labels, *scores.shape)
    positive = _names(class_names, 2)[1:]
    return float(_roc_auc_columns(scores[:, 1:], labels[:, None], positive)[0])


def _class_indices(classes: Sequence[ClassRef], class_names: Optional[Sequence[str]],
                   num_classes: int) -> List[int]:
    indices = []
    for ref in classes:
        if isinstance(ref, str):
            if class_names is None:
                raise ValueError(f"Class '{ref}' is given by name but no class names are known "
                                 "(pass class_names, or set dataset_meta['classes']).")
            if ref not in class_names:
                raise ValueError(f"Unknown class '{ref}': the classes are "
                                 f'{", ".join(map(str, class_names))}.')
            indices.append(list(class_names).index(ref))
        elif isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
            if not 0 <= ref < num_classes:
                raise ValueError(f'Class index {ref} is outside [0, {num_classes}).')
            indices.append(int(ref))
        else:
            raise TypeError(f'Classes are given by index (int) or name (str), got {ref!r}.')
    if not indices:
        raise ValueError('The class subset is empty.')
    if len(set(indices)) != len(indices):
        raise ValueError(f'The class subset {list(classes)} names a class twice.')
    return indices


def class_mean(values: ArrayLike,
               classes: Optional[Sequence[ClassRef]] = None,
               class_names: Optional[Sequence[str]] = None) -> Tuple[float, int]:
    """Mean of per-class values over the classes where they are defined.

    Args:
        values (np.ndarray | torch.Tensor): Per-class values, shape (C,); NaN where undefined
            (as :func:`per_class_roc_auc` and :func:`per_class_recall` return them).
        classes (Sequence[int | str], optional): The classes to average, by index or by name.
            Defaults to None (all).
        class_names (Sequence[str], optional): Names of the C classes, needed for classes
            given by name. Defaults to None.

    Returns:
        tuple[float, int]: The mean over the selected classes whose value is not NaN (NaN if
        there are none), and how many classes that mean averages.
    """
    values = _to_numpy(values).astype(np.float64, copy=False)
    if values.ndim != 1:
        raise ValueError(f'values must have one entry per class, got shape {values.shape}.')
    if class_names is not None and len(class_names) != values.size:
        raise ValueError(f'class_names lists {len(class_names)} classes but values has '
                         f'{values.size}.')
    if classes is not None:
        values = values[_class_indices(classes, class_names, values.size)]
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        return float('nan'), 0
    return float(defined.mean()), int(defined.size)
