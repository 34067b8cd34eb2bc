"""The predictions CSV holds exactly each sample's id, ground truth and probabilities."""
import csv

import pytest
import torch
from mmpretrain.structures import DataSample

from medtrans.evaluation.metrics import DumpPredictionsCsv


def _samples(multi_label, labelled=True):
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], dtype=torch.float64)
    samples = []
    for i, score in enumerate(scores):
        sample = DataSample().set_pred_score(score)
        sample.set_metainfo(dict(sample_id=f'id{i}', img_path=f'/x/id{i}.png'))
        if labelled and multi_label:
            sample.set_gt_score(torch.tensor([[1., -1., 0.], [0., 1., 1.]][i]))
        elif labelled:
            sample.set_gt_label(2 - i)
        samples.append(sample.to_dict())
    return samples


def _dump(tmp_path, multi_label, labelled=True):
    metric = DumpPredictionsCsv(out_file=str(tmp_path / 'preds.csv'))
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    metric.process({}, _samples(multi_label, labelled))
    assert metric.evaluate(2) == {}
    with open(tmp_path / 'preds.csv', newline='') as f:
        return list(csv.reader(f))


def test_single_label_rows(tmp_path):
    assert _dump(tmp_path, multi_label=False) == [
        ['sample_id', 'gt_label', 'pred_label', 'prob_a', 'prob_b', 'prob_c'],
        ['id0', '2', '1', '0.1', '0.7', '0.2'],
        ['id1', '1', '0', '0.5', '0.25', '0.25'],
    ]


def test_images_without_labels_have_no_ground_truth_column(tmp_path):
    assert _dump(tmp_path, multi_label=False, labelled=False) == [
        ['sample_id', 'pred_label', 'prob_a', 'prob_b', 'prob_c'],
        ['id0', '1', '0.1', '0.7', '0.2'],
        ['id1', '0', '0.5', '0.25', '0.25'],
    ]


def test_multi_label_rows_keep_ignored_entries(tmp_path):
    assert _dump(tmp_path, multi_label=True) == [
        ['sample_id', 'gt_a', 'gt_b', 'gt_c', 'prob_a', 'prob_b', 'prob_c'],
        ['id0', '1', '-1', '0', '0.1', '0.7', '0.2'],
        ['id1', '0', '1', '1', '0.5', '0.25', '0.25'],
    ]


def test_segmentation_outputs_are_refused_by_name(tmp_path):
    metric = DumpPredictionsCsv(out_file=str(tmp_path / 'p.csv'))
    with pytest.raises(ValueError, match='ISIC_1.*pred_score'):
        metric.process({}, [dict(img_path='ISIC_1.jpg')])
    with pytest.raises(ValueError, match='.csv'):
        DumpPredictionsCsv(out_file=str(tmp_path / 'p.json'))
