"""Classification metrics for MMEngine evaluators: Cohen's kappa, ROC-AUC, balanced recall.

They read mmpretrain ``DataSample`` outputs (as the dicts MMEngine's ``Evaluator`` hands over)
and compute their scores with :mod:`medtrans.evaluation.functional.classification`:

* ``pred_score``: float tensor (C,), the class probabilities (softmax for single-label tasks,
  sigmoid for multi-label ones);
* single-label ground truth: ``gt_label``, an integer tensor holding one class index;
* multi-label ground truth: ``gt_score``, a float tensor (C,) of 1 (positive), 0 (negative) and
  -1 (ignored, the U-Ignore policy); without ``gt_score``, ``gt_label`` lists the positive class
  indices (mmpretrain's ``MultiLabelDataset`` convention);
* ``img_path`` (or ``sample_idx``) names the sample in error messages.

``process`` keeps one (scores, ground truth) pair of CPU numpy arrays per sample, so MMEngine
gathers them across ranks and drops the samples a distributed sampler padded.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from medtrans.evaluation.functional.classification import (
    IGNORE_TARGET,
    accuracy,
    binary_roc_auc,
    class_mean,
    cohen_kappa,
    per_class_recall,
    per_class_roc_auc,
)
from medtrans.registry import METRICS

__all__ = ['CohenKappaMetric', 'ROCAUCMetric', 'BalancedRecallMetric']

Result = Tuple[np.ndarray, Union[int, np.ndarray]]


def _sample_name(sample: dict) -> str:
    if 'img_path' in sample:
        return str(sample['img_path'])
    if 'sample_idx' in sample:
        return f'sample {sample["sample_idx"]}'
    return '<sample without img_path or sample_idx>'


def _stack(samples: Sequence[dict], key: str, metric: str) -> np.ndarray:
    """Stack one field of a batch of samples into a CPU numpy array, in one transfer."""
    values = []
    for sample in samples:
        if key not in sample:
            raise ValueError(f'{_sample_name(sample)}: the data sample has no "{key}", which '
                             f'{metric} reads.')
        values.append(torch.as_tensor(sample[key]).reshape(-1))
    sizes = [v.numel() for v in values]
    odd = next((i for i, size in enumerate(sizes) if size != sizes[0]), None)
    if odd is not None:
        raise ValueError(f'{_sample_name(samples[odd])}: "{key}" has {sizes[odd]} entries where '
                         f'{_sample_name(samples[0])} has {sizes[0]}.')
    stacked = torch.stack(values).cpu()
    # float64 holds float16/bfloat16/float32 exactly; numpy has no bfloat16.
    return (stacked.double() if stacked.is_floating_point() else stacked).numpy()


class _ClassificationMetric(BaseMetric):
    """Keeps ``pred_score`` and the ground truth of each sample; subclasses score them.

    Args:
        multi_label (bool): Whether the ground truth is multi-label (``gt_score``, or a
            ``gt_label`` list of positives) rather than one class index per sample.
        collect_device (str): Device used to gather results across ranks, 'cpu' or 'gpu'.
        prefix (str, optional): Prefix of the metric names.
        collect_dir (str, optional): Shared folder through which 'cpu' collection gathers the
            ranks' results.
    """

    # Metric names are the study's as they stand ('kappa', 'IoU'): no prefix, on purpose (MMEngine
    # warns where the prefix is None).
    default_prefix = ''

    def __init__(self, multi_label: bool, collect_device: str, prefix: Optional[str],
                 collect_dir: Optional[str]) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.multi_label = multi_label

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep the scores and the ground truth of each sample, as CPU numpy arrays.

        Args:
            data_batch (Any): The batch from the dataloader (unused).
            data_samples (Sequence[dict]): Model outputs (``DataSample.to_dict()``), each
                with ``pred_score`` and ``gt_label`` or (multi-label) ``gt_score``.

        Raises:
            ValueError: A field is missing, has the wrong size or holds values outside what
                is expected; the message names the sample.
        """
        name = type(self).__name__
        scores = _stack(data_samples, 'pred_score', name)
        num_classes = scores.shape[1]
        if self.multi_label:
            truth = self._multi_label_targets(data_samples, num_classes)
        else:
            truth = self._single_labels(data_samples, num_classes)
        self.results.extend(zip(scores, truth))

    def _single_labels(self, samples: Sequence[dict], num_classes: int) -> np.ndarray:
        labels = _stack(samples, 'gt_label', type(self).__name__)
        if labels.shape[1] != 1:
            raise ValueError(f'{_sample_name(samples[0])}: gt_label holds {labels.shape[1]} '
                             f'labels; {type(self).__name__} scores one class per sample '
                             '(multi-label data needs ROCAUCMetric(multi_label=True)).')
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f'{_sample_name(samples[0])}: gt_label is {labels.dtype}; '
                             'expected an integer class index.')
        labels = labels[:, 0].astype(np.int64)
        bad = (labels < 0) | (labels >= num_classes)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f'{_sample_name(samples[row])}: gt_label is {labels[row]}; '
                             f'expected a class index in [0, {num_classes}).')
        return labels

    def _multi_label_targets(self, samples: Sequence[dict], num_classes: int) -> np.ndarray:
        name = type(self).__name__
        if 'gt_score' in samples[0]:
            targets = _stack(samples, 'gt_score', name)
            if targets.shape[1] != num_classes:
                raise ValueError(f'{_sample_name(samples[0])}: gt_score has {targets.shape[1]} '
                                 f'entries but pred_score has {num_classes}.')
            invalid = ~np.isin(targets, (0, 1, IGNORE_TARGET))
            if invalid.any():
                row = int(np.flatnonzero(invalid.any(axis=1))[0])
                raise ValueError(f'{_sample_name(samples[row])}: gt_score holds '
                                 f'{np.unique(targets[row][invalid[row]]).tolist()}; expected '
                                 f'1 (positive), 0 (negative) or {IGNORE_TARGET} (ignored).')
            return targets.astype(np.int8)
        for sample in samples:
            if 'gt_label' not in sample:
                raise ValueError(f'{_sample_name(sample)}: the data sample has neither '
                                 f'"gt_score" nor "gt_label", one of which {name} reads.')
        labels = [torch.as_tensor(sample['gt_label']).reshape(-1) for sample in samples]
        flat = torch.cat(labels).cpu().numpy()
        if not np.issubdtype(flat.dtype, np.integer):
            raise ValueError(f'{_sample_name(samples[0])}: gt_label is {flat.dtype}; expected '
                             'integer class indices.')
        rows = np.repeat(np.arange(len(samples)), [len(label) for label in labels])
        bad = (flat < 0) | (flat >= num_classes)
        if bad.any():
            row = int(rows[bad][0])
            raise ValueError(f'{_sample_name(samples[row])}: gt_label holds '
                             f'{flat[rows == row].tolist()}; expected class indices in '
                             f'[0, {num_classes}).')
        targets = np.zeros((len(samples), num_classes), dtype=np.int8)
        targets[rows, flat] = 1
        return targets

    def _arrays(self,
                results: List[Result]) -> Tuple[np.ndarray, np.ndarray, Optional[List[str]]]:
        """Stack the results of the split; find the class names (None if unknown)."""
        if not results:
            raise ValueError(f'{type(self).__name__} received no samples: nothing was '
                             'processed.')
        sizes = {len(scores) for scores, _ in results}
        if len(sizes) > 1:
            raise ValueError(f'pred_score has {sorted(sizes)} entries in different samples; '
                             'every sample needs one score per class.')
        scores = np.stack([scores for scores, _ in results])
        truth = np.stack([truth for _, truth in results])
        classes = (self.dataset_meta or {}).get('classes')
        if classes is None:
            return scores, truth, None
        if len(classes) != scores.shape[1]:
            raise ValueError(f"dataset_meta['classes'] lists {len(classes)} classes but "
                             f'pred_score has {scores.shape[1]} entries.')
        return scores, truth, [str(name) for name in classes]


def _key_names(classes: Optional[List[str]], num_classes: int) -> List[str]:
    """Names of the classes in per-class metric keys: their names, else their indices."""
    return classes if classes is not None else [str(i) for i in range(num_classes)]


@METRICS.register_module()
class CohenKappaMetric(_ClassificationMetric):
    """Cohen's kappa of ordinal grades (APTOS 2019: quadratic weights) and accuracy.

    The predicted grade is the argmax of ``pred_score``; grades are the class indices, so the
    distance between grades ``i`` and ``j`` is ``|i - j|`` whether or not the grades between
    them occur. See :func:`medtrans.evaluation.functional.cohen_kappa`.

    Keys: ``kappa`` (NaN, with a warning, when every label and prediction is one grade) and
    ``accuracy``.

    Args:
        weights (str, optional): 'quadratic', 'linear' or None (unweighted). Defaults to
            'quadratic'.
        collect_device (str): Device used to gather results across ranks, 'cpu' or 'gpu'.
            Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names (``prefix/kappa``). Defaults to
            None, which keeps the bare names.
        collect_dir (str, optional): Shared folder through which 'cpu' collection gathers the
            ranks' results. Defaults to None (MMEngine's choice).
    """

    def __init__(self,
                 weights: Optional[str] = 'quadratic',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(False, collect_device, prefix, collect_dir)
        if weights not in (None, 'linear', 'quadratic'):
            raise ValueError(f"weights must be 'quadratic', 'linear' or None, got {weights!r}.")
        self.weights = weights

    def compute_metrics(self, results: List[Result]) -> Dict[str, float]:
        """Compute kappa and accuracy over the split.

        Args:
            results (list[tuple[np.ndarray, int]]): ``(pred_score, gt_label)`` of each sample.

        Returns:
            dict[str, float]: ``kappa`` and ``accuracy``.
        """
        scores, labels, _ = self._arrays(results)
        return {
            'kappa': cohen_kappa(scores, labels, self.weights),
            'accuracy': accuracy(scores, labels),
        }


@METRICS.register_module()
class BalancedRecallMetric(_ClassificationMetric):
    """Mean per-class recall (ISIC 2019's score, scikit-learn's balanced accuracy).

    The predicted class is the argmax of ``pred_score``. The mean runs over the classes present
    in the ground truth of the evaluated split: a class absent from it (ISIC 2019's UNK, never in
    the training data) has no recall; it is reported as NaN with a warning naming it and left out
    of the mean, while predictions of it count as misses of the true class. See
    :func:`medtrans.evaluation.functional.balanced_recall`.

    Keys: ``recall`` (the mean), ``recall_num_classes`` (how many classes it averages),
    ``accuracy``, and ``recall/{class}`` per class, named by ``dataset_meta['classes']`` (by
    index without them).

    Args:
        collect_device (str): Device used to gather results across ranks, 'cpu' or 'gpu'.
            Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names (``prefix/recall``). Defaults to
            None, which keeps the bare names.
        collect_dir (str, optional): Shared folder through which 'cpu' collection gathers the
            ranks' results. Defaults to None (MMEngine's choice).
    """

    def __init__(self,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(False, collect_device, prefix, collect_dir)

    def compute_metrics(self, results: List[Result]) -> Dict[str, float]:
        """Compute the per-class recalls, their mean and the accuracy over the split.

        Args:
            results (list[tuple[np.ndarray, int]]): ``(pred_score, gt_label)`` of each sample.

        Returns:
            dict[str, float]: ``recall``, ``recall_num_classes``, ``accuracy``,
            ``recall/{class}``.
        """
        scores, labels, classes = self._arrays(results)
        recall = per_class_recall(scores, labels, classes)
        mean, count = class_mean(recall)
        metrics = {'recall': mean, 'recall_num_classes': float(count),
                   'accuracy': accuracy(scores, labels)}
        names = _key_names(classes, len(recall))
        metrics.update({f'recall/{name}': float(r) for name, r in zip(names, recall)})
        return metrics


@METRICS.register_module()
class ROCAUCMetric(_ClassificationMetric):
    """ROC-AUC: binary, one-vs-rest or multi-label, per class and averaged over classes.

    What is scored depends on the task:

    * binary single-label (two classes): the AUC of ``pred_score[1]``, the probability of the
      positive class (CBIS-DDSM, PatchCamelyon). Binary datasets list the negative class first.
    * single-label with C > 2 classes: the AUC of each class against the others.
    * multi-label (``multi_label=True``, CheXpert): the AUC of each class over its samples whose
      target is not -1 (U-Ignore leaves those entries out of that class only).

    A class whose scored samples hold no positive or no negative has no AUC: it is reported as
    NaN with a warning naming it, left out of the means, and the ``*_num_classes`` keys say how
    many classes each mean averages. See :func:`medtrans.evaluation.functional.per_class_roc_auc`.

    Keys: ``auc`` (the mean over all scored classes; for a binary task, its AUC),
    ``auc_num_classes``, ``auc/{class}`` per scored class (named by ``dataset_meta['classes']``,
    by index without them), for each subset ``name`` of ``class_subsets`` ``auc_{name}`` and
    ``auc_{name}_num_classes``, and for a single-label task ``accuracy`` (argmax).

    Args:
        multi_label (bool): Whether samples are multi-label: ground truth in ``gt_score`` (1, 0,
            -1 = ignored), or else ``gt_label`` listing the positive classes. Defaults to False
            (one class index in ``gt_label``).
        class_subsets (dict[str, Sequence[int | str]], optional): Named subsets of the classes,
            by index or by ``dataset_meta['classes']`` name, each averaged separately, e.g.
            ``dict(competition=['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema',
            'Pleural Effusion'])`` for CheXpert. Not for a binary task. Defaults to None.
        collect_device (str): Device used to gather results across ranks, 'cpu' or 'gpu'.
            Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names (``prefix/auc``). Defaults to
            None, which keeps the bare names.
        collect_dir (str, optional): Shared folder through which 'cpu' collection gathers the
            ranks' results. Defaults to None (MMEngine's choice).
    """

    def __init__(self,
                 multi_label: bool = False,
                 class_subsets: Optional[Dict[str, Sequence[Union[int, str]]]] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(multi_label, collect_device, prefix, collect_dir)
        class_subsets = dict(class_subsets or {})
        for name, classes in class_subsets.items():
            if not isinstance(name, str) or not name or name == 'num_classes':
                raise ValueError(f'class_subsets keys name the subsets (metric auc_{{name}}), '
                                 f'got {name!r}.')
            if isinstance(classes, (str, int)) or len(classes) == 0:
                raise ValueError(f'class_subsets[{name!r}] must be a non-empty list of class '
                                 f'indices or names, got {classes!r}.')
        self.class_subsets = class_subsets

    def compute_metrics(self, results: List[Result]) -> Dict[str, float]:
        """Compute the per-class AUCs and their means over the split.

        Args:
            results (list[tuple[np.ndarray, int | np.ndarray]]): ``(pred_score, truth)`` of
                each sample; truth is the class index (single-label) or the targets in
                {1, 0, -1} (multi-label).

        Returns:
            dict[str, float]: The keys listed in the class docstring.
        """
        scores, truth, classes = self._arrays(results)
        num_classes = scores.shape[1]
        names = _key_names(classes, num_classes)
        binary = not self.multi_label and num_classes == 2
        if binary and self.class_subsets:
            raise ValueError('class_subsets need several scored classes; a binary task scores '
                             'class 1 only.')
        if self.multi_label:
            auc = per_class_roc_auc(scores, truth, classes)
        elif binary:
            # The AUC of class 0 is that of class 1 seen from the other side: not reported.
            auc, names = np.array([binary_roc_auc(scores, truth, classes)]), names[1:]
        else:
            auc = per_class_roc_auc(scores, np.eye(num_classes, dtype=np.int8)[truth], classes)
        mean, count = class_mean(auc)
        metrics = {'auc': mean, 'auc_num_classes': float(count)}
        if not self.multi_label:
            metrics['accuracy'] = accuracy(scores, truth)
        for name, subset in self.class_subsets.items():
            mean, count = class_mean(auc, subset, classes)
            metrics[f'auc_{name}'] = mean
            metrics[f'auc_{name}_num_classes'] = float(count)
        metrics.update({f'auc/{name}': float(a) for name, a in zip(names, auc)})
        return metrics
