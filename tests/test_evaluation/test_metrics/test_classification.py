"""Classification metrics fed mmpretrain DataSamples through MMEngine's Evaluator, against
scikit-learn, on real label tables."""
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    recall_score,
    roc_auc_score,
)

from medtrans.engine.hooks.metrics_json_hook import MetricsJsonHook
from medtrans.evaluation.metrics import BalancedRecallMetric, CohenKappaMetric, ROCAUCMetric
from medtrans.registry import METRICS

from ..cls_labels import (
    CHEXPERT_COMPETITION,
    logged_warnings,
    noisy_scores,
    read_chexpert_targets,
    read_isic2019_labels,
)


def _single_label(scores: np.ndarray, labels: np.ndarray) -> list:
    return [
        DataSample(metainfo=dict(img_path=f'img_{i}.png')).set_pred_score(
            torch.from_numpy(s)).set_gt_label(int(y))
        for i, (s, y) in enumerate(zip(scores, labels))
    ]


def _multi_label(scores: np.ndarray, targets: np.ndarray) -> list:
    return [
        DataSample(metainfo=dict(img_path=f'img_{i}.jpg')).set_pred_score(
            torch.from_numpy(s)).set_gt_score(torch.from_numpy(t).float())
        for i, (s, t) in enumerate(zip(scores, targets))
    ]


def _evaluate(evaluator: Evaluator, samples: list, batch_size: int = 16, size: int = 0) -> dict:
    for start in range(0, len(samples), batch_size):
        evaluator.process(samples[start:start + batch_size])
    return evaluator.evaluate(size or len(samples))


def _grades(n: int = 120, seed: int = 0):
    labels = np.random.default_rng(seed).integers(0, 5, n)
    return noisy_scores(np.eye(5)[labels], seed), labels


@pytest.fixture(scope='module')
def isic2019(fixtures_dir):
    labels, classes = read_isic2019_labels(fixtures_dir)
    labels = labels[::50]  # 507 real rows, every class but UNK present
    return noisy_scores(np.eye(len(classes))[labels], seed=1), labels, classes


@pytest.fixture(scope='module')
def chexpert(fixtures_dir):
    targets, classes = read_chexpert_targets(fixtures_dir)
    return noisy_scores(targets, seed=2, softmax=False), targets, classes


@pytest.mark.parametrize('cfg', [
    dict(type='CohenKappaMetric', weights='linear'),
    dict(type='BalancedRecallMetric', prefix='isic'),
    dict(type='ROCAUCMetric', multi_label=True, class_subsets=dict(competition=[0, 'Edema'])),
])
def test_registered_and_built_from_config(cfg):
    with DefaultScope.overwrite_default_scope('medtrans'):
        metric = METRICS.build(cfg)
    assert type(metric).__name__ == cfg['type']


def test_kappa_metric_matches_sklearn():
    scores, labels = _grades()
    metrics = _evaluate(Evaluator([CohenKappaMetric()]), _single_label(scores, labels))
    preds = scores.argmax(axis=1)
    assert metrics == {
        'kappa': cohen_kappa_score(labels, preds, labels=range(5), weights='quadratic'),
        'accuracy': accuracy_score(labels, preds),
    }


def test_process_keeps_cpu_numpy_per_sample():
    scores, labels = _grades(6)
    metric = CohenKappaMetric()
    metric.process(None, [s.to_dict() for s in _single_label(scores, labels)])
    assert len(metric.results) == 6
    assert all(type(s) is np.ndarray and s.shape == (5, ) and int(y) == label
               for (s, y), label in zip(metric.results, labels))


def test_recall_metric_on_isic2019_and_json(isic2019, tmp_path: Path):
    scores, labels, classes = isic2019
    evaluator = Evaluator([BalancedRecallMetric()])
    evaluator.dataset_meta = dict(classes=classes)
    with logged_warnings() as warnings:
        metrics = _evaluate(evaluator, _single_label(scores, labels))
    preds = scores.argmax(axis=1)
    per_class = recall_score(labels, preds, labels=range(8), average=None)
    with pytest.warns(UserWarning, match='y_pred contains classes not in y_true'):
        expected_mean = balanced_accuracy_score(labels, preds)
    assert list(metrics)[:3] == ['recall', 'recall_num_classes', 'accuracy']
    assert metrics['recall'] == expected_mean
    assert metrics['recall_num_classes'] == 8.0
    assert metrics['accuracy'] == accuracy_score(labels, preds)
    assert [metrics[f'recall/{name}'] for name in classes[:8]] == per_class.tolist()
    assert math.isnan(metrics['recall/UNK']) and "'UNK'" in warnings[0]
    assert all(type(value) is float for value in metrics.values())

    # The metrics JSON hook writes every value, NaN as null.
    runner = SimpleNamespace(work_dir=str(tmp_path), timestamp='20260101_000000', _train_loop={})
    MetricsJsonHook().after_test_epoch(runner, metrics)
    written = json.loads((tmp_path / 'metrics' / 'test_latest.json').read_text())['metrics']
    assert written == {k: None if math.isnan(v) else v for k, v in metrics.items()}


def test_binary_auc_metric():
    labels = np.random.default_rng(3).integers(0, 2, 90)
    scores = noisy_scores(np.eye(2)[labels], seed=3)
    evaluator = Evaluator([ROCAUCMetric(prefix='ddsm')])
    evaluator.dataset_meta = dict(classes=('no mass', 'mass'))
    metrics = _evaluate(evaluator, _single_label(scores, labels))
    auc = roc_auc_score(labels, scores[:, 1])
    assert metrics == {
        'ddsm/auc': auc,
        'ddsm/auc_num_classes': 1.0,
        'ddsm/accuracy': accuracy_score(labels, scores.argmax(axis=1)),
        'ddsm/auc/mass': auc,
    }


def test_one_vs_rest_auc_metric_matches_sklearn_multiclass():
    scores, labels = _grades()
    metrics = _evaluate(Evaluator([ROCAUCMetric()]), _single_label(scores, labels))
    # One-vs-rest is scikit-learn's multi-label AUC of the one-hot labels (its multi-class
    # mode would refuse these rounded softmax rows, which no longer sum to exactly 1).
    onehot = np.eye(5)[labels]
    assert [metrics[f'auc/{c}'] for c in range(5)] == roc_auc_score(
        onehot, scores, average=None).tolist()
    assert metrics['auc'] == roc_auc_score(onehot, scores, average='macro')
    assert metrics['auc_num_classes'] == 5.0


def test_multi_label_auc_metric_u_ignore_and_subsets(chexpert):
    scores, targets, classes = chexpert
    subsets = dict(competition=list(CHEXPERT_COMPETITION),
                   by_index=[classes.index(name) for name in CHEXPERT_COMPETITION])
    evaluator = Evaluator([ROCAUCMetric(multi_label=True, class_subsets=subsets)])
    evaluator.dataset_meta = dict(classes=classes)
    with logged_warnings() as warnings:
        metrics = _evaluate(evaluator, _multi_label(scores, targets), batch_size=10)
    expected = {}
    for c, name in enumerate(classes):
        scored = targets[:, c] != -1
        expected[name] = (math.nan if name == 'Pneumonia' else roc_auc_score(
            targets[scored, c], scores[scored, c]))
    defined = [v for v in expected.values() if not math.isnan(v)]
    competition = [expected[name] for name in CHEXPERT_COMPETITION]
    assert metrics['auc'] == np.mean(defined) and metrics['auc_num_classes'] == 13.0
    assert metrics['auc_competition'] == metrics['auc_by_index'] == np.mean(competition)
    assert metrics['auc_competition_num_classes'] == 5.0
    assert math.isnan(metrics['auc/Pneumonia'])
    assert {name: metrics[f'auc/{name}'] for name in classes if name != 'Pneumonia'} == {
        name: value for name, value in expected.items() if name != 'Pneumonia'}
    assert 'accuracy' not in metrics
    assert all(type(value) is float for value in metrics.values())
    assert len(warnings) == 1 and "'Pneumonia'" in warnings[0]


def test_multi_label_gt_label_lists_equal_gt_score(chexpert):
    scores, targets, _ = chexpert
    targets = np.where(targets == -1, 0, targets)  # U-Zeros
    samples = [
        DataSample().set_pred_score(torch.from_numpy(s)).set_gt_label(np.flatnonzero(t).tolist())
        for s, t in zip(scores, targets)
    ]
    with logged_warnings():
        from_labels = _evaluate(Evaluator([ROCAUCMetric(multi_label=True)]), samples)
        from_scores = _evaluate(
            Evaluator([ROCAUCMetric(multi_label=True)]), _multi_label(scores, targets))
    assert from_labels.keys() == from_scores.keys()
    np.testing.assert_array_equal(list(from_labels.values()), list(from_scores.values()))


def test_padded_samples_beyond_size_are_dropped():
    scores, labels = _grades()
    samples = _single_label(scores, labels)
    padded = _evaluate(Evaluator([CohenKappaMetric()]), samples + samples[:7], size=len(samples))
    assert padded == _evaluate(Evaluator([CohenKappaMetric()]), samples)


def test_bad_samples_name_the_image():
    scores, labels = _grades(4)
    samples = _single_label(scores, labels)
    with pytest.raises(ValueError, match=r'img_0.png: gt_label is 5; expected a class index'):
        Evaluator([BalancedRecallMetric()]).process(
            _single_label(scores, np.array([5, 0, 1, 2])))
    with pytest.raises(ValueError, match='img_1.png: the data sample has no "pred_score"'):
        Evaluator([CohenKappaMetric()]).process(
            [samples[0], DataSample(metainfo=dict(img_path='img_1.png')).set_gt_label(1)])
    with pytest.raises(ValueError, match=r'gt_label holds 2 labels; CohenKappaMetric scores one '
                       r'class per sample \(multi-label data needs ROCAUCMetric'):
        Evaluator([CohenKappaMetric()]).process(
            [DataSample().set_pred_score(torch.ones(5)).set_gt_label([1, 2])])
    short = DataSample(metainfo=dict(img_path='img_1.png')).set_pred_score(torch.ones(4))
    with pytest.raises(ValueError, match='img_1.png: "pred_score" has 4 entries where '
                       'img_0.png has 5'):
        Evaluator([CohenKappaMetric()]).process([samples[0], short.set_gt_label(1)])
    soft = np.zeros((2, 5), np.float32)
    soft[1, 3] = 0.5
    with pytest.raises(ValueError, match=r'img_1.jpg: gt_score holds \[0.5\]; expected 1 '
                       r'\(positive\), 0 \(negative\) or -1 \(ignored\)'):
        Evaluator([ROCAUCMetric(multi_label=True)]).process(_multi_label(scores[:2], soft))
    with pytest.raises(ValueError, match='neither "gt_score" nor "gt_label"'):
        Evaluator([ROCAUCMetric(multi_label=True)]).process(
            [DataSample().set_pred_score(torch.ones(5))])


def test_bad_configuration_and_empty_split_are_refused():
    scores, labels = _grades(10)
    evaluator = Evaluator([BalancedRecallMetric()])
    evaluator.dataset_meta = dict(classes=('a', 'b', 'c'))
    evaluator.process(_single_label(scores, labels))
    with pytest.raises(ValueError, match=r"dataset_meta\['classes'\] lists 3 classes but "
                       'pred_score has 5 entries'):
        evaluator.evaluate(10)
    evaluator = Evaluator([ROCAUCMetric(class_subsets=dict(main=['x']))])
    evaluator.process(_single_label(scores, labels))
    with pytest.raises(ValueError, match="Class 'x' is given by name but no class names"):
        evaluator.evaluate(10)
    binary = Evaluator([ROCAUCMetric(class_subsets=dict(main=[1]))])
    binary.process(_single_label(np.eye(2, dtype=np.float32)[[0, 1]], np.array([0, 1])))
    with pytest.raises(ValueError, match='a binary task scores class 1 only'):
        binary.evaluate(2)
    with pytest.raises(ValueError, match='CohenKappaMetric received no samples'):
        Evaluator([CohenKappaMetric()]).evaluate(0)
    with pytest.raises(ValueError, match="class_subsets\\['main'\\] must be a non-empty list"):
        ROCAUCMetric(class_subsets=dict(main='Edema'))
    with pytest.raises(ValueError, match="weights must be 'quadratic', 'linear' or None"):
        CohenKappaMetric(weights='cubic')


def _distributed_worker(rank: int, world_size: int, init_file: str, collect_dir: str,
                        scores: np.ndarray, targets: np.ndarray, classes: list,
                        out_file: str) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world_size)
    try:
        evaluator = Evaluator([ROCAUCMetric(multi_label=True, collect_dir=collect_dir,
                                            class_subsets=dict(competition=CHEXPERT_COMPETITION))])
        evaluator.dataset_meta = dict(classes=classes)
        # An interleaved share padded to equal length from the start of the split, as MMEngine's
        # DefaultSampler gives it; the evaluator is told the size of the whole split.
        indices = np.arange(-(-len(scores) // world_size) * world_size) % len(scores)
        mine = indices[rank::world_size]
        metrics = _evaluate(evaluator, _multi_label(scores[mine], targets[mine]), batch_size=8,
                            size=len(scores))
        if rank == 0:
            torch.save(metrics, out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_distributed_collection_equals_single_process(chexpert, tmp_path: Path):
    scores, targets, classes = chexpert
    scores, targets = scores[:75], targets[:75]  # odd, so the sampler pads one sample
    out_file = tmp_path / 'metrics.pt'
    mp.spawn(
        _distributed_worker,
        args=(2, str(tmp_path / 'init'), str(tmp_path / 'collect'), scores, targets, classes,
              str(out_file)),
        nprocs=2)
    single = Evaluator([ROCAUCMetric(multi_label=True,
                                     class_subsets=dict(competition=CHEXPERT_COMPETITION))])
    single.dataset_meta = dict(classes=classes)
    with logged_warnings():
        expected = _evaluate(single, _multi_label(scores, targets))
    distributed = torch.load(out_file, weights_only=True)
    assert distributed.keys() == expected.keys()
    np.testing.assert_array_equal(list(distributed.values()), list(expected.values()))
