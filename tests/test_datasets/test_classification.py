"""The classification base: split selection, sample checks, split record."""
import json
import logging
import os
from collections.abc import Mapping

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmpretrain.datasets.transforms import PackInputs

from medtrans.datasets import BaseClsDataset, LoadImageStrict
from medtrans.datasets.classification import summarize_labels
from medtrans.testing import write_images


class _ToyDataset(BaseClsDataset):
    """Samples handed in through ``samples`` (not registered)."""

    METAINFO = dict(classes=('a', 'b', 'c'))
    SPLIT_FRACTIONS = dict(train=0.6, val=0.2, test=0.2)

    def __init__(self, data_root, samples, official=None, **kwargs):
        self._samples = samples
        self._official = official
        super().__init__(data_root=data_root, **kwargs)

    def load_samples(self):
        return [dict(s) for s in self._samples]


class _OfficialToyDataset(_ToyDataset):

    def official_splits(self):
        return {name: [dict(s) for s in samples] for name, samples in self._official.items()}


def _samples(labels, groups=None):
    return [dict(sample_id=f'id{i:03d}', gt_label=label, img_path=f'/nowhere/id{i:03d}.png',
                 **({} if groups is None else dict(patient_id=groups[i])))
            for i, label in enumerate(labels)]


@pytest.fixture
def mm_log():
    """What the datasets log to MMEngine's current logger, as one string."""
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield lambda: '\n'.join(records)
    logger.removeHandler(handler)


def _ids(dataset):
    return [dataset.get_data_info(i)['sample_id'] for i in range(len(dataset))]


def test_divided_splits_are_exact_stratified_disjoint_and_cover_the_set(tmp_path):
    # 30 of a, 15 of b, 5 of c: 60/20/20 of each is a whole number.
    labels = [0] * 30 + [1] * 15 + [2] * 5
    samples = _samples(labels)
    parts = {split: _ToyDataset(str(tmp_path), samples, split=split)
             for split in ('train', 'val', 'test', 'all')}
    counts = {split: np.bincount([ds.get_data_info(i)['gt_label'] for i in range(len(ds))],
                                 minlength=3).tolist() for split, ds in parts.items()}
    assert counts == dict(train=[18, 9, 3], val=[6, 3, 1], test=[6, 3, 1], all=[30, 15, 5])
    ids = {split: set(_ids(ds)) for split, ds in parts.items()}
    assert ids['train'] | ids['val'] | ids['test'] == ids['all']
    assert len(ids['train']) + len(ids['val']) + len(ids['test']) == 50
    # Sorted by id, whatever the order of load_samples.
    reversed_train = _ToyDataset(str(tmp_path), samples[::-1], split='train')
    assert _ids(reversed_train) == _ids(parts['train']) == sorted(ids['train'])
    # Seeded: the same seed gives the same split, another seed another one.
    again = _ToyDataset(str(tmp_path), samples, split='val')
    other = _ToyDataset(str(tmp_path), samples, split='val', split_seed=1)
    assert _ids(again) == _ids(parts['val']) != _ids(other)


def test_groups_stay_in_one_split(tmp_path, mm_log):
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 3, 90).tolist()
    groups = [f'p{i // 3}' for i in range(90)]
    samples = _samples(labels, groups)
    where = {}
    for split in ('train', 'val', 'test'):
        ds = _ToyDataset(str(tmp_path), samples, split=split)
        for i in range(len(ds)):
            where.setdefault(ds.get_data_info(i)['patient_id'], set()).add(split)
    assert len(where) == 30 and all(len(splits) == 1 for splits in where.values())
    assert ('(train 0.6/val 0.2/test 0.2 of 90 samples, seed 0, grouped by patient_id (30 '
            'groups), stratified by label)') in mm_log()


def test_split_file_is_written_reread_and_checked(tmp_path):
    samples = _samples([0, 1, 2] * 10)
    data_root = tmp_path / 'data'
    data_root.mkdir()
    split_file = tmp_path / 'work' / 'splits' / 'toy.json'
    train = _ToyDataset(str(data_root), samples, split='train', split_file=str(split_file))
    record = json.loads(split_file.read_text())
    assert record['meta'] == dict(dataset='_ToyDataset',
                                  fractions=dict(train=0.6, val=0.2, test=0.2), split_seed=0,
                                  grouped=False, stratified=True)
    assert record['splits']['train'] == _ids(train)
    # A record is read back, not recomputed: edit it and the dataset follows it.
    record['splits']['train'], record['splits']['val'] = (record['splits']['val'],
                                                          record['splits']['train'])
    split_file.write_text(json.dumps(record))
    assert _ids(_ToyDataset(str(data_root), samples, split='val',
                            split_file=str(split_file))) == _ids(train)
    with pytest.raises(ValueError, match='made with split_seed=0, but this run asks for '
                                         'split_seed=3'):
        _ToyDataset(str(data_root), samples, split='val', split_file=str(split_file),
                    split_seed=3)
    with pytest.raises(ValueError, match='lies inside data_root'):
        _ToyDataset(str(data_root), samples, split_file=str(data_root / 'split.json'))
    # Official splits and 'all' neither read nor write it.
    os.remove(split_file)
    _ToyDataset(str(data_root), samples, split='all', split_file=str(split_file))
    assert not split_file.exists()


def test_divided_split_is_what_the_split_record_keeps(tmp_path):
    samples = _samples([0, 1, 2] * 10, groups=[f'p{i // 2}' for i in range(30)])
    val = _ToyDataset(str(tmp_path), samples, split='val', split_seed=3)
    meta, splits = val.divided_split()
    assert meta == dict(dataset='_ToyDataset', fractions=dict(train=0.6, val=0.2, test=0.2),
                        split_seed=3, grouped=True, stratified=True)
    assert splits['val'] == _ids(val)
    assert sorted(sum(splits.values(), [])) == sorted(s['sample_id'] for s in samples)
    assert _ToyDataset(str(tmp_path), samples, split='train', split_seed=3).divided_split() == (
        meta, splits)
    assert val.split_record_name == '_ToyDataset_seed3.json'
    # Loaded on demand; the whole set and official splits are not divisions.
    lazy = _ToyDataset(str(tmp_path), samples, split='test', split_seed=3, lazy_init=True)
    assert lazy.divided_split() == (meta, splits)
    assert _ToyDataset(str(tmp_path), samples, split='all').divided_split() is None
    official = _OfficialToyDataset(str(tmp_path), samples, official=dict(extra=samples[:3]),
                                   split='extra')
    assert official.divided_split() is None


def test_split_names_fractions_and_official_splits(tmp_path):
    samples = _samples([0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'val', 'test', 'all'\]"
                                         ", got 'official_test'"):
        _ToyDataset(str(tmp_path), samples, split='official_test')
    with pytest.raises(ValueError, match='"all" names every sample'):
        _ToyDataset(str(tmp_path), samples, split_fractions=dict(all=1.0))
    halves = _ToyDataset(str(tmp_path), _samples([0, 1] * 5), split='b',
                         split_fractions=dict(a=0.5, b=0.5))
    assert len(halves) == 5
    official = dict(official_test=_samples([2, 2]))
    test = _OfficialToyDataset(str(tmp_path), samples, official, split='official_test')
    assert _ids(test) == ['id000', 'id001'] and test.get_data_info(0)['gt_label'] == 2
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'val', 'test', 'all', "
                                         r"'official_test'\], got 'nope'"):
        _OfficialToyDataset(str(tmp_path), samples, official, split='nope')
    with pytest.raises(FileNotFoundError, match='data_root ".*missing" not found'):
        _ToyDataset(str(tmp_path / 'missing'), samples)
    with pytest.raises(ValueError, match='_ToyDataset: found no samples in'):
        _ToyDataset(str(tmp_path), [])
    with pytest.raises(ValueError, match='split "val" of .* is empty'):
        _ToyDataset(str(tmp_path), _samples([0, 1]), split='val',
                    split_fractions=dict(train=1.0, val=0.0))


def test_a_lazy_official_mapping_is_looked_up_once_for_the_split_asked(tmp_path):
    looked_up = []

    class Lazy(Mapping):
        def __getitem__(self, name):
            looked_up.append(name)
            return _samples([1, 2])

        def __iter__(self):
            return iter(('official_val', 'official_test'))

        def __len__(self):
            return 2

    class LazyDataset(_ToyDataset):
        def official_splits(self):
            return Lazy()

    assert len(LazyDataset(str(tmp_path), [], split='official_test')) == 2
    assert looked_up == ['official_test']


@pytest.mark.parametrize('sample, match', [
    (dict(gt_label=0), 'has no str "sample_id"'),
    (dict(sample_id=7, gt_label=0), 'has no str "sample_id"'),
    (dict(sample_id='x', gt_label=3), r'sample "x" has gt_label 3; expected 0..2'),
    (dict(sample_id='x', gt_label=-1), 'has gt_label -1; expected 0..2'),
    (dict(sample_id='x', gt_label=True), 'expected an int class index'),
    (dict(sample_id='x', gt_label=1.0), 'expected an int class index'),
    (dict(sample_id='x'), 'has gt_label None'),
    (dict(sample_id='id000', gt_label=0), r"sample ids repeat: \['id000'\]"),
    (dict(sample_id='x', gt_label=0, group='g'), 'sample "id000" has none of'),
])
def test_samples_that_break_the_interface_are_refused(tmp_path, sample, match):
    with pytest.raises((TypeError, ValueError), match=match):
        _ToyDataset(str(tmp_path), _samples([0, 1]) + [sample], split='all')


class _MultiLabelToy(_ToyDataset):
    MULTI_LABEL = True


@pytest.mark.parametrize('score, match', [
    (np.array([1, 0, 0], np.float64), 'expected a float32 vector of 3 entries'),
    (np.array([1, 0], np.float32), 'expected a float32 vector of 3 entries'),
    ([1.0, 0.0, 0.0], 'expected a float32 vector of 3 entries'),
    (np.array([1, 0.5, 0], np.float32), r'has gt_score \[1.0, 0.5, 0.0\]; expected entries 1'),
    (np.array([1, 0, np.nan], np.float32), 'expected entries 1'),
])
def test_multi_label_scores_are_checked(tmp_path, score, match):
    good = dict(sample_id='a', gt_score=np.array([1, -1, 0], np.float32))
    with pytest.raises((TypeError, ValueError), match=match):
        _MultiLabelToy(str(tmp_path), [good, dict(sample_id='b', gt_score=score)], split='all')


def test_multi_label_split_is_not_stratified_and_logs_per_class_counts(tmp_path, mm_log):
    scores = [np.array(row, np.float32) for row in
              ([1, 0, -1], [0, 1, 0], [1, 1, 0], [0, 0, -1], [1, -1, 1])]
    samples = [dict(sample_id=f's{i}', gt_score=s) for i, s in enumerate(scores)]
    ds = _MultiLabelToy(str(tmp_path), samples, split='all')
    assert ('_MultiLabelToy split "all" (every sample, not divided): 5 samples, 3 classes:\n'
            '  0 a: 3 positive / 2 negative / 0 ignored\n'
            '  1 b: 2 positive / 2 negative / 1 ignored\n'
            '  2 c: 1 positive / 2 negative / 2 ignored') in mm_log()
    assert [ds.get_cat_ids(i) for i in range(5)] == [[0], [1], [0, 1], [], [0, 2]]
    train = _MultiLabelToy(str(tmp_path), samples, split='train')
    assert len(train) == 3


def test_the_split_is_logged_with_its_label_counts(tmp_path, mm_log):
    _ToyDataset(str(tmp_path), _samples([0] * 30 + [1] * 15 + [2] * 5), split='val')
    assert ('_ToyDataset split "val" (train 0.6/val 0.2/test 0.2 of 50 samples, seed 0, '
            'stratified by label): 10 samples, 3 classes:\n  0 a: 6\n  1 b: 3\n  2 c: 1'
            ) in mm_log()
    assert summarize_labels([], ('a', 'b'), multi_label=False) == '  0 a: 0\n  1 b: 0'


def test_pipeline_dicts_build_in_the_medtrans_registry_without_a_default_scope(tmp_path):
    path, = write_images(str(tmp_path), ['x.png'], seed=0, grey=True)
    samples = [dict(sample_id='x', gt_label=2, img_path=path)]
    ds = _ToyDataset(str(tmp_path), samples, split='all',
                     pipeline=[dict(type='LoadImageStrict'), dict(type='mmpretrain.PackInputs')])
    assert isinstance(ds.pipeline.transforms[0], LoadImageStrict)
    assert isinstance(ds.pipeline.transforms[1], PackInputs)
    packed = ds[0]
    assert packed['inputs'].shape == (3, 32, 32)
    assert packed['data_samples'].gt_label.tolist() == [2]
    assert torch.equal(packed['inputs'][0], packed['inputs'][2])
