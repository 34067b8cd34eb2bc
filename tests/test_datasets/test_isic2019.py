"""ISIC 2019: the real ground-truth table, the 80/10/10 split grouped by lesion, bad inputs."""
import os.path as osp

import numpy as np
import pytest

from medtrans.datasets import ISIC2019Dataset, LoadImageStrict
from medtrans.datasets import isic2019 as isic2019_module
from medtrans.datasets.isic2019 import ISIC2019_CLASSES, read_isic2019_ground_truth
from medtrans.testing import write_csv, write_images

GT = 'ISIC_2019_Training_GroundTruth.csv'
META = 'ISIC_2019_Training_Metadata.csv'
IMAGES = 'ISIC_2019_Training_Input'


@pytest.fixture(scope='module')
def real_gt(fixtures_dir):
    return fixtures_dir / 'isic2019' / GT


def _reference_labels(path):
    """(ids, class indices) of the real table, read with NumPy alone."""
    ids = np.loadtxt(path, dtype=str, delimiter=',', skiprows=1, usecols=0)
    onehot = np.loadtxt(path, delimiter=',', skiprows=1, usecols=range(1, 10))
    assert np.all(onehot.sum(1) == 1)
    return ids.tolist(), onehot.argmax(1)


def test_the_full_real_table_parses(real_gt):
    table, rows = read_isic2019_ground_truth(str(real_gt))
    ids, labels = _reference_labels(real_gt)
    assert len(rows) == 25331
    assert [image for _, image, _ in rows] == ids
    assert np.array_equal([label for _, _, label in rows], labels)
    assert [line for line, _, _ in rows] == list(range(2, 25333))
    assert sum(image.endswith('_downsampled') for _, image, _ in rows) == 2074
    # Eight diagnoses in the training set; UNK has no image.
    assert np.bincount(labels, minlength=9).tolist() == [4522, 12875, 3323, 867, 2624, 239,
                                                         253, 628, 0]


@pytest.fixture
def no_image_check(monkeypatch):
    """Pair rows with image paths without files, to split the full table without 25k images."""
    monkeypatch.setattr(isic2019_module, 'image_paths',
                        lambda table, rows, folder, suffix: [osp.join(folder, i + suffix)
                                                             for _, i in rows])


def _full_table_root(tmp_path, real_gt, lesions=None):
    root = tmp_path / 'data'
    root.mkdir()
    (root / GT).write_bytes(real_gt.read_bytes())
    if lesions is not None:
        ids, _ = _reference_labels(real_gt)
        write_csv(str(root / META), [('image', 'age_approx', 'anatom_site_general',
                                      'lesion_id', 'sex')] +
                  [(i, '', '', lesion, '') for i, lesion in zip(ids, lesions)])
    return root


def test_full_table_split_is_exact_stratified_and_deterministic(tmp_path, real_gt,
                                                                no_image_check):
    root = _full_table_root(tmp_path, real_gt)
    _, labels = _reference_labels(real_gt)
    totals = np.bincount(labels, minlength=9)
    parts = {s: ISIC2019Dataset(str(root), split=s, lesion_groups=False)
             for s in ('train', 'val', 'test')}
    # Largest remainder of 25331 x (0.8, 0.1, 0.1) = 20264.8, 2533.1, 2533.1.
    assert {s: len(d) for s, d in parts.items()} == dict(train=20265, val=2533, test=2533)
    for split, fraction in (('train', 0.8), ('val', 0.1), ('test', 0.1)):
        counts = np.bincount(parts[split].get_gt_labels(), minlength=9)
        assert np.all(np.abs(counts - totals * fraction) <= 1), (split, counts)
    ids = [{d.get_data_info(i)['sample_id'] for i in range(len(d))} for d in parts.values()]
    assert sum(map(len, ids)) == len(set.union(*ids)) == 25331
    assert 'lesion_id' not in parts['train'].get_data_info(0)
    again = ISIC2019Dataset(str(root), split='test', lesion_groups=False)
    assert [again.get_data_info(i) for i in range(0, 2533, 500)] == [
        parts['test'].get_data_info(i) for i in range(0, 2533, 500)]


def test_full_table_split_keeps_each_lesion_in_one_split(tmp_path, real_gt, no_image_check):
    # Lesions of one to four images, and some images without a lesion id, as in the metadata.
    rng = np.random.RandomState(0)
    lesions, n = [], 0
    while len(lesions) < 25331:
        size = rng.randint(1, 5)
        lesions += [f'HAM_{n:07d}' if rng.rand() > 0.1 else ''] * size
        n += 1
    root = _full_table_root(tmp_path, real_gt, lesions[:25331])
    where, sizes = {}, {}
    for split in ('train', 'val', 'test'):
        ds = ISIC2019Dataset(str(root), split=split, split_file=str(tmp_path / 'w' / 's.json'))
        sizes[split] = len(ds)
        for i in range(len(ds)):
            where.setdefault(ds.get_data_info(i)['lesion_id'], set()).add(split)
    assert all(len(splits) == 1 for splits in where.values())
    # A blank lesion id makes the image its own group.
    assert len(where) == len({lesion for lesion in lesions[:25331] if lesion}) + lesions[
        :25331].count('')
    # Grouped, the sizes follow the fractions to within a lesion or two per class.
    assert abs(sizes['train'] - 20265) <= 8 and abs(sizes['val'] - 2533) <= 8
    assert sum(sizes.values()) == 25331


@pytest.fixture
def handful(tmp_path, real_gt):
    """The header and 12 rows of the real table, byte for byte (CRLF, 0/1), with 16x16 JPEGs:
    the first 8 rows and 4 of the ``_downsampled`` ones."""
    lines = real_gt.read_bytes().split(b'\r\n')
    down = [line for line in lines if b'_downsampled' in line][:4]
    (tmp_path / GT).write_bytes(b'\r\n'.join(lines[:9] + down) + b'\r\n')
    ids = [line.split(b',')[0].decode() for line in lines[1:9] + down]
    write_images(str(tmp_path / IMAGES), [f'{i}.jpg' for i in ids], seed=0, size=16)
    return tmp_path, ids


def test_a_handful_of_real_rows_load_with_their_images(handful, real_gt):
    root, ids = handful
    ref_ids, ref_labels = _reference_labels(real_gt)
    expected = {i: int(ref_labels[ref_ids.index(i)]) for i in ids}
    ds = ISIC2019Dataset(str(root), split='all', pipeline=[LoadImageStrict()],
                         lesion_groups=False)
    assert ds.metainfo['classes'] == ISIC2019_CLASSES
    loaded = {ds[i]['sample_id']: ds[i]['gt_label'] for i in range(len(ds))}
    assert loaded == expected
    sample = ds[0]
    assert sample['img'].shape == (16, 16, 3)
    assert sample['img_path'] == str(root / IMAGES / f'{sample["sample_id"]}.jpg')
    # Opted out of the lesions, the split is by image, with no group.
    assert 'lesion_id' not in ds.get_data_info(0)


def test_float_cells_as_in_the_official_file_give_the_same_labels(handful):
    root, _ = handful
    ints = ISIC2019Dataset(str(root), split='all', lesion_groups=False)
    text = (root / GT).read_text().replace(',0', ',0.0').replace(',1', ',1.0')
    (root / GT).write_text(text)
    floats = ISIC2019Dataset(str(root), split='all', lesion_groups=False)
    assert [floats.get_data_info(i) for i in range(len(floats))] == [
        ints.get_data_info(i) for i in range(len(ints))]


def _rewrite_row(root, line, cells):
    lines = (root / GT).read_bytes().split(b'\r\n')
    name = lines[line - 1].split(b',')[0]
    lines[line - 1] = b','.join([name] + [c.encode() for c in cells])
    (root / GT).write_bytes(b'\r\n'.join(lines))


@pytest.mark.parametrize('cells, match', [
    (['0'] * 9, r'line 4: image "ISIC_0000002" has 0 positive diagnoses \[\]; expected exactly '
                'one 1 among'),
    (['1', '1'] + ['0'] * 7, r"line 4: image \"ISIC_0000002\" has 2 positive diagnoses "
                             r"\['MEL', 'NV'\]"),
    (['0', '2'] + ['0'] * 7, r"line 4: NV is '2'; expected 0 or 1 \(or 0.0 or 1.0\)"),
    (['0', ''] + ['1'] + ['0'] * 6, "line 4: NV is ''"),
    (['0', '1.'] + ['0'] * 7, "line 4: NV is '1.'"),
    (['0', '1'] + ['0'] * 6, 'line 4: has 9 cells'),
])
def test_bad_one_hot_rows_name_the_file_and_row(handful, cells, match):
    root, _ = handful
    _rewrite_row(root, 4, cells)
    with pytest.raises(ValueError, match=match) as info:
        ISIC2019Dataset(str(root), split='all')
    assert f'ISIC 2019 ground-truth table "{root / GT}"' in str(info.value)


def test_missing_and_unlabelled_images(handful):
    root, ids = handful
    (root / IMAGES / f'{ids[3]}.jpg').unlink()
    with pytest.raises(FileNotFoundError, match=f'line 5: image ".*{ids[3]}.jpg" not found'):
        ISIC2019Dataset(str(root), split='all')
    write_images(str(root / IMAGES), [f'{ids[3]}.jpg', 'ISIC_9999999.jpg'], seed=1, size=16)
    (root / IMAGES / 'ATTRIBUTION.txt').write_text('as in the release\n')
    with pytest.raises(ValueError, match='image ".*ISIC_9999999.jpg" has no row in ISIC 2019 '
                                         'ground-truth table'):
        ISIC2019Dataset(str(root), split='all')


def _metadata(root, rows):
    write_csv(str(root / META), [('image', 'age_approx', 'anatom_site_general', 'lesion_id',
                                  'sex')] + [(i, '55.0', 'head/neck', lesion, 'male')
                                             for i, lesion in rows])


def test_metadata_groups_by_lesion_and_is_matched_with_or_without_the_suffix(handful):
    root, ids = handful
    # The metadata may spell the downsampled ids without their suffix.
    lesions = ['HAM_1', 'HAM_1', '', 'HAM_2'] + [f'HAM_{i}' for i in range(3, 3 + len(ids) - 4)]
    _metadata(root, [(i.replace('_downsampled', ''), lesion) for i, lesion in zip(ids, lesions)])
    ds = ISIC2019Dataset(str(root), split='all')
    groups = {ds.get_data_info(i)['sample_id']: ds.get_data_info(i)['lesion_id']
              for i in range(len(ds))}
    assert groups == {i: lesion or i for i, lesion in zip(ids, lesions)}
    assert 'lesion_id' not in ISIC2019Dataset(str(root), split='all',
                                              lesion_groups=False).get_data_info(0)


@pytest.mark.parametrize('edit, match', [
    (lambda rows: rows[:-1], r'line 13: image "ISIC_0000020_downsampled" has no row in ISIC 2019 '
                             'metadata table'),
    (lambda rows: rows + [('ISIC_9999999', 'HAM_9')], r'metadata table ".*" line 14: image '
                                                      '"ISIC_9999999" is not in ISIC 2019'),
    (lambda rows: rows + [rows[0]], 'metadata table ".*" line 14: repeats the image '
                                    '"ISIC_0000000" of line 2'),
])
def test_metadata_for_other_images_is_refused(handful, edit, match):
    root, ids = handful
    _metadata(root, edit([(i, 'HAM_1') for i in ids]))
    with pytest.raises(ValueError, match=match):
        ISIC2019Dataset(str(root), split='all')


def test_the_metadata_is_required_unless_lesion_groups_is_false(handful):
    root, _ = handful
    for explicit in ({}, dict(lesion_groups=True)):
        with pytest.raises(FileNotFoundError) as info:
            ISIC2019Dataset(str(root), split='all', **explicit)
        message = str(info.value)
        assert message.startswith(f'ISIC 2019 metadata table "{root / META}" not found.')
        assert (f'download {META} ("Training Metadata") from the ISIC 2019 challenge site, '
                'https://challenge.isic-archive.com/data/#2019, into') in message
        assert 'set lesion_groups=False on the dataset' in message
    with pytest.raises(ValueError, match='lesion_groups must be True .* or False .*, got None'):
        ISIC2019Dataset(str(root), split='all', lesion_groups=None)
    assert len(ISIC2019Dataset(str(root), split='all', lesion_groups=False)) == 12


def test_the_study_configs_require_the_lesions(handful, repo_root):
    from mmengine.config import Config

    from medtrans.registry import DATASETS

    root, ids = handful
    for config in ('configs/classification/deit-s/deit-s_in1k_1xb64_plateau_isic2019-224.py',
                   'configs/knn/resnet50/knn_resnet50_random_1xb64_isic2019-224.py',
                   'configs/dino/dino_deit-s_in1k_4xb64_300e_isic2019-224-96.py'):
        cfg = Config.fromfile(str(repo_root / config))
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if cfg.get(loader) is None:
                continue
            dataset = dict(cfg[loader].dataset, data_root=str(root), pipeline=[])
            assert dataset['lesion_groups'] is True, (config, loader)
            with pytest.raises(FileNotFoundError, match='ISIC 2019 challenge site'):
                DATASETS.build(dataset)


def test_split_record_refuses_a_split_made_without_lesions(handful, tmp_path_factory):
    root, ids = handful
    split_file = tmp_path_factory.mktemp('work') / 'isic2019.json'
    ISIC2019Dataset(str(root), split='train', split_file=str(split_file), lesion_groups=False)
    _metadata(root, [(i, 'HAM_1') for i in ids])
    with pytest.raises(ValueError, match='made with grouped=False, but this run asks for '
                                         'grouped=True'):
        ISIC2019Dataset(str(root), split='train', split_file=str(split_file))
