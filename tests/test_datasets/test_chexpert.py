import os
import os.path as osp
import shutil
import time
from collections import Counter

import numpy as np
import pytest
from mmengine.config import Config

from medtrans.datasets import CheXpertDataset, check_dataset
from medtrans.datasets.chexpert import (
    CHEXPERT_OBSERVATIONS,
    apply_uncertainty_policy,
    read_chexpert_csv,
)
from medtrans.setup_env import register_all_modules
from medtrans.testing.layouts.chexpert import CHEXPERT_HEADER
from medtrans.testing.layouts.classification import write_csv, write_images

# Brute force of the label spellings, independent of the reader's table.
_VALUE = {'1.0': 1.0, '0.0': 0.0, '-1.0': -1.0, '': np.nan}


def _fixture_rows(fixtures):
    """The fixture's rows by plain splitting (it has no quoted cells)."""
    text = (fixtures / 'chexpert' / 'train_sample.csv').read_text()
    assert '"' not in text
    lines = text.splitlines()
    return lines[0].split(','), [line.split(',') for line in lines[1:]]


def test_real_sample_parsed_exactly(fixtures_dir):
    header, rows = _fixture_rows(fixtures_dir)
    assert tuple(header) == CHEXPERT_HEADER
    assert tuple(header[5:]) == CHEXPERT_OBSERVATIONS
    table = read_chexpert_csv(str(fixtures_dir / 'chexpert' / 'train_sample.csv'))
    assert table.lines == list(range(2, 78))
    assert table.rel_paths == [row[0][len('CheXpert-v1.0-small/'):] for row in rows]
    assert table.patient_ids == [row[0].split('/')[2] for row in rows]
    assert table.views == [row[3] for row in rows]
    np.testing.assert_array_equal(table.labels,
                                  np.array([[_VALUE[c] for c in row[5:]] for row in rows]))
    # Counted once by hand; the brute force above agrees.
    assert len(rows) == 76 and len(set(table.patient_ids)) == 29
    assert (table.views.count('Frontal'), table.views.count('Lateral')) == (60, 16)
    labels = table.labels
    assert [int((labels == v).sum()) for v in (1, 0, -1)] == [181, 65, 44]
    assert int(np.isnan(labels).sum()) == 774


def test_uncertainty_policies():
    labels = np.array([[1, 0, -1, np.nan]], np.float32)
    for policy, expected in (('zeros', [1, 0, 0, 0]), ('ones', [1, 0, 1, 0]),
                             ('ignore', [1, 0, -1, 0])):
        scores = apply_uncertainty_policy(labels, policy)
        assert scores.dtype == np.float32
        np.testing.assert_array_equal(scores, [expected])
    with pytest.raises(ValueError, match="one of \\('zeros', 'ones', 'ignore'\\)"):
        apply_uncertainty_policy(labels, 'U-Zeros')


def _big_table(path, fixtures, total):
    """``total`` rows in the published format: the fixture's rows over and over, each repeat
    with new patient ids (5 digits, as published)."""
    header, rows = _fixture_rows(fixtures)
    patients = sorted({row[0].split('/')[2] for row in rows})
    lines = [','.join(header)]
    for repeat in range(-(-total // len(rows))):
        for row in rows:
            parts = row[0].split('/')
            parts[2] = f'patient{repeat * len(patients) + patients.index(parts[2]) + 1:05d}'
            lines.append(','.join(['/'.join(parts)] + row[1:]))
    del lines[total + 1:]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return [line.split(',') for line in lines[1:]]


def test_full_size_table_parses(tmp_path, fixtures_dir):
    """A 223,414-row train.csv (the size of the real one) is read, every row exactly."""
    path = str(tmp_path / 'train.csv')
    rows = _big_table(path, fixtures_dir, 223414)
    start = time.perf_counter()
    table = read_chexpert_csv(path)
    seconds = time.perf_counter() - start
    print(f'\nread_chexpert_csv: {len(table.lines)} rows in {seconds:.2f} s')
    assert len(table.lines) == len(rows) == 223414
    assert table.patient_ids == [row[0].split('/')[2] for row in rows]
    assert len(set(table.patient_ids)) == len({row[0].split('/')[2] for row in rows}) == 85246
    assert table.views.count('Lateral') == sum(row[3] == 'Lateral' for row in rows) == 47025
    cells = Counter(cell for row in rows for cell in row[5:])
    for value, spelling, count in ((1, '1.0', 532085), (0, '0.0', 191076), (-1, '-1.0', 129341)):
        assert int((table.labels == value).sum()) == cells[spelling] == count
    assert int(np.isnan(table.labels).sum()) == 223414 * 14 - 532085 - 191076 - 129341


@pytest.fixture(scope='module')
def fixture_root(tmp_path_factory, fixtures_dir):
    """The real 76-row table as train.csv, a generated valid.csv, and tiny grey JPEGs."""
    root = tmp_path_factory.mktemp('chexpert') / 'CheXpert-v1.0-small'
    root.mkdir()
    shutil.copy(fixtures_dir / 'chexpert' / 'train_sample.csv', root / 'train.csv')
    _, rows = _fixture_rows(fixtures_dir)
    write_images(str(root), [row[0].split('/', 1)[1] for row in rows], seed=0, size=16,
                 grey=True)
    valid = [('CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg', 'Male', '73',
              'Frontal', 'AP', *(['1.0', '0.0'] * 7)),
             ('CheXpert-v1.0-small/valid/patient64542/study1/view2_lateral.jpg', 'Male', '70',
              'Lateral', '', *(['0.0'] * 14))]
    write_csv(str(root / 'valid.csv'), [CHEXPERT_HEADER, *valid])
    write_images(str(root), [row[0].split('/', 1)[1] for row in valid], seed=1, size=16,
                 grey=True)
    return root


def _infos(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


@pytest.mark.parametrize('policy', ['zeros', 'ones', 'ignore'])
def test_dataset_samples(fixture_root, fixtures_dir, policy):
    _, rows = _fixture_rows(fixtures_dir)
    uncertain = {'zeros': 0.0, 'ones': 1.0, 'ignore': -1.0}[policy]
    expected = {
        row[0].split('/', 1)[1]: (row[0].split('/')[2], row[3], [
            {'1.0': 1.0, '0.0': 0.0, '-1.0': uncertain, '': 0.0}[c] for c in row[5:]])
        for row in rows}
    dataset = CheXpertDataset(data_root=str(fixture_root), split='all', uncertainty=policy,
                              pipeline=[dict(type='LoadImageStrict')])
    infos = _infos(dataset)
    assert [i['sample_id'] for i in infos] == sorted(expected)
    for info in infos:
        patient, view, scores = expected[info['sample_id']]
        assert info['img_path'] == osp.join(str(fixture_root), info['sample_id'])
        assert (info['patient_id'], info['view']) == (patient, view)
        assert info['gt_score'].dtype == np.float32
        np.testing.assert_array_equal(info['gt_score'], scores)
    assert dataset[0]['img'].shape == (16, 16, 3)


def test_splits_are_grouped_by_patient(fixture_root):
    splits = {split: _infos(CheXpertDataset(data_root=str(fixture_root), split=split))
              for split in ('train', 'val', 'test')}
    ids = [i['sample_id'] for infos in splits.values() for i in infos]
    assert sorted(ids) == [i['sample_id'] for i in _infos(
        CheXpertDataset(data_root=str(fixture_root), split='all'))]
    patients = {split: {i['patient_id'] for i in infos} for split, infos in splits.items()}
    assert not (patients['train'] & patients['val'] or patients['train'] & patients['test']
                or patients['val'] & patients['test'])
    assert sum(map(len, patients.values())) == 29
    again = CheXpertDataset(data_root=str(fixture_root), split='test')
    assert _infos(again) and [i['sample_id'] for i in _infos(again)] == [
        i['sample_id'] for i in splits['test']]


def test_view_filter_and_official_val(fixture_root):
    frontal = CheXpertDataset(data_root=str(fixture_root), split='all', views=('Frontal', ))
    lateral = CheXpertDataset(data_root=str(fixture_root), split='all', views=['Lateral'])
    assert (len(frontal), len(lateral)) == (60, 16)
    assert {i['view'] for i in _infos(frontal)} == {'Frontal'}
    assert all(i['sample_id'].endswith('_lateral.jpg') for i in _infos(lateral))
    official = CheXpertDataset(data_root=str(fixture_root), split='official_val')
    assert [i['sample_id'] for i in _infos(official)] == [
        'valid/patient64541/study1/view1_frontal.jpg',
        'valid/patient64542/study1/view2_lateral.jpg']
    np.testing.assert_array_equal(_infos(official)[0]['gt_score'], [1, 0] * 7)
    for bad in ('Frontal', (), ('PA', )):
        with pytest.raises(ValueError, match='views must be a non-empty sequence'):
            CheXpertDataset(data_root=str(fixture_root), views=bad)
    with pytest.raises(ValueError, match='uncertainty must be one of'):
        CheXpertDataset(data_root=str(fixture_root), uncertainty='U-Ones')


@pytest.fixture
def small_root(tmp_path, fixture_root):
    root = tmp_path / 'CheXpert-v1.0-small'
    shutil.copytree(fixture_root, root)
    return root


def _edit_row(root, line, column, value):
    path = root / 'train.csv'
    lines = path.read_text().split('\n')
    cells = lines[line - 1].split(',')
    cells[CHEXPERT_HEADER.index(column)] = value
    lines[line - 1] = ','.join(cells)
    path.write_text('\n'.join(lines))
    return str(path)


@pytest.mark.parametrize('column, value, match', [
    ('Edema', '2.0', r'line 5: "Edema" is .2\.0.; expected 1\.0 \(positive\)'),
    ('Fracture', 'yes', r'line 5: "Fracture" is .yes.'),
    ('Frontal/Lateral', 'Oblique', r"line 5: Frontal/Lateral is 'Oblique'; expected one of"),
    ('Path', 'CheXpert-v1.0-small/valid/patient35534/study2/view1_frontal.jpg',
     r'line 5: Path is .*; expected CheXpert-v1\.0\[-small\]/train/patientNNNNN'),
    ('Path', 'CheXpert-v1.0-small/train/patient35534/study6/view1_frontal.jpg',
     r'line 5: repeats the image .* of line 4'),
])
def test_bad_rows_are_named(small_root, column, value, match):
    path = _edit_row(small_root, 5, column, value)
    with pytest.raises(ValueError, match=match) as info:
        CheXpertDataset(data_root=str(small_root), split='all')
    assert path in str(info.value)


def test_missing_image_and_table_are_named(small_root):
    image = small_root / 'train' / 'patient35534' / 'study9' / 'view1_frontal.jpg'
    os.remove(image)
    with pytest.raises(FileNotFoundError, match=rf'train\.csv" line 6: image "{image}" not '
                                                rf'found; expected every image of the table '
                                                rf'under "{small_root}"\.$'):
        CheXpertDataset(data_root=str(small_root), split='all')
    # The image is not needed when its view is not selected...
    assert len(CheXpertDataset(data_root=str(small_root), split='all',
                               views=('Lateral', ))) == 16
    os.remove(small_root / 'valid.csv')
    with pytest.raises(FileNotFoundError, match='valid.csv" not found'):
        CheXpertDataset(data_root=str(small_root), split='official_val')


def test_check_dataset_scans_every_split(fixture_root):
    register_all_modules(init_default_scope=False)
    args = dict(type='CheXpertDataset', data_root=str(fixture_root),
                pipeline=[dict(type='LoadImageStrict'), dict(type='mmpretrain.PackInputs')])
    cfg = Config(dict(default_scope='medtrans', **{
        f'{split}_dataloader': dict(dataset=dict(split=split, **args))
        for split in ('train', 'val', 'test')}))
    report = check_dataset(cfg)
    assert report.ok, report.format()
    assert sum(s.num_checked for s in report.splits) == 76
    # Patient ids are in the data infos: the leakage check applies.
    assert report.notes == []
