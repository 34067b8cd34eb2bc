import json
import os
import shutil

import cv2
import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile

from medtrans.datasets import ISIC2018Task1Dataset, LoadBinaryMask, LoadImageStrict, split_ids
from medtrans.datasets.utils import collect_problems
from medtrans.registry import DATASETS
from medtrans.setup_env import register_all_modules
from medtrans.testing import make_synthetic_isic2018

TRAIN_IN = 'ISIC2018_Task1-2_Training_Input'
TRAIN_GT = 'ISIC2018_Task1_Training_GroundTruth'


def _jpeg(path, height, width, seed=0):
    # Smooth content keeps encoding fast even at 6642x4420.
    rng = np.random.RandomState(seed)
    small = rng.randint(0, 256, (8, 8, 3)).astype(np.uint8)
    assert cv2.imwrite(str(path), cv2.resize(small, (width, height)))


def _mask(path, height, width):
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (width // 4, height // 3), 0, 0, 360, 255, -1)
    assert cv2.imwrite(str(path), mask)
    return mask


@pytest.fixture(scope='module')
def real_layout(tmp_path_factory, fixtures_dir):
    """The 5 real images with generated masks, the 10 real masks with generated images."""
    root = tmp_path_factory.mktemp('isic_real')
    (root / TRAIN_IN).mkdir()
    (root / TRAIN_GT).mkdir()
    src = fixtures_dir / 'isic2018_task1'
    for img in sorted((src / TRAIN_IN).glob('*.jpg')):
        shutil.copy(img, root / TRAIN_IN / img.name)
        _mask(root / TRAIN_GT / f'{img.stem}_segmentation.png', 767, 1022)
    for mask in sorted((src / TRAIN_GT).glob('*.png')):
        shutil.copy(mask, root / TRAIN_GT / mask.name)
        height, width = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE).shape
        _jpeg(root / TRAIN_IN / mask.name.replace('_segmentation.png', '.jpg'), height, width)
    # As in the real release: text files beside the images are not samples.
    for name in ('LICENSE.txt', 'ATTRIBUTION.txt'):
        (root / TRAIN_IN / name).write_text('licence text\n')
        (root / TRAIN_GT / name).write_text('licence text\n')
    return root


@pytest.fixture(scope='module')
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('isic_synthetic') / 'data'
    make_synthetic_isic2018(str(root), num_train=50, num_val=3, num_test=2, size=(32, 32))
    return root


def _copy_layout(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_real_samples_load_through_the_pipeline(real_layout, fixtures_dir):
    register_all_modules()
    dataset = DATASETS.build(dict(
        type='ISIC2018Task1Dataset', data_root=str(real_layout), split='trainval',
        pipeline=[dict(type='LoadImageStrict'), dict(type='LoadBinaryMask'),
                  dict(type='mmseg.PackSegInputs')]))
    assert len(dataset) == 15
    assert dataset.metainfo['classes'] == ('background', 'lesion')
    real_masks = {p.name for p in (fixtures_dir / 'isic2018_task1' / TRAIN_GT).glob('*.png')}
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        assert info['img_path'].endswith('.jpg')
        assert info['seg_map_path'] == info['img_path'].replace(TRAIN_IN, TRAIN_GT).replace(
            '.jpg', '_segmentation.png')
        sample = dataset[idx]
        gt = sample['data_samples'].gt_sem_seg.data
        expected = cv2.imread(info['seg_map_path'], cv2.IMREAD_GRAYSCALE) // 255
        assert sample['inputs'].shape == (3, *expected.shape)
        assert gt.shape == (1, *expected.shape)
        assert gt.min() == 0 and gt.max() == 1
        np.testing.assert_array_equal(gt[0].numpy(), expected)
        if os.path.basename(info['seg_map_path']) not in real_masks:
            # A real image: the same pixels as MMCV's loader gives.
            ref = LoadImageFromFile()(dict(img_path=info['img_path']))['img']
            np.testing.assert_array_equal(sample['inputs'].permute(1, 2, 0).numpy(), ref)


def test_train_val_split_is_deterministic_90_10_and_disjoint(synthetic_root):
    ids = {}
    for split in ('train', 'val', 'trainval'):
        dataset = ISIC2018Task1Dataset(data_root=str(synthetic_root), split=split)
        ids[split] = [os.path.basename(d['img_path'])[:-4] for d in dataset.load_data_list()]
    assert (len(ids['train']), len(ids['val']), len(ids['trainval'])) == (45, 5, 50)
    assert not set(ids['train']) & set(ids['val'])
    assert sorted(ids['train'] + ids['val']) == ids['trainval']
    assert {'train': ids['train'], 'val': ids['val']} == split_ids(
        ids['trainval'], {'train': 0.9, 'val': 0.1}, seed=0)
    again = ISIC2018Task1Dataset(data_root=str(synthetic_root), split='val')
    assert [os.path.basename(d['img_path'])[:-4] for d in again.load_data_list()] == ids['val']
    other_seed = ISIC2018Task1Dataset(data_root=str(synthetic_root), split='val', split_seed=1)
    assert [os.path.basename(d['img_path'])[:-4] for d in other_seed.load_data_list()
            ] != ids['val']
    quarter = ISIC2018Task1Dataset(data_root=str(synthetic_root), split='val',
                                   val_fraction=0.25)
    assert len(quarter) == 12  # 37.5 / 12.5: the tie goes to the first split, train


def test_official_sets_read_their_own_folders(synthetic_root):
    for split, expected in (('official_val', ['ISIC_0000050', 'ISIC_0000051', 'ISIC_0000052']),
                            ('official_test', ['ISIC_0000053', 'ISIC_0000054'])):
        dataset = ISIC2018Task1Dataset(data_root=str(synthetic_root), split=split,
                                       test_mode=True)
        infos = dataset.load_data_list()
        assert [os.path.basename(d['img_path'])[:-4] for d in infos] == expected
        assert all('Task1-2_' + ('Validation' if split == 'official_val' else 'Test') in
                   d['img_path'] for d in infos)


def test_split_file_is_written_where_asked_and_read_back(synthetic_root, tmp_path):
    split_file = tmp_path / 'work_dirs' / 'run' / 'isic2018_split.json'
    train = ISIC2018Task1Dataset(data_root=str(synthetic_root), split='train',
                                 split_file=str(split_file))
    assert sorted(os.listdir(split_file.parent)) == ['isic2018_split.json']
    record = json.loads(split_file.read_text())
    assert record['meta'] == dict(dataset='ISIC2018Task1Dataset', val_fraction=0.1,
                                  split_seed=0)
    assert [os.path.basename(d['img_path'])[:-4] for d in train.load_data_list()
            ] == record['splits']['train']
    assert len(record['splits']['val']) == 5
    assert train.divided_split() == (record['meta'], record['splits'])
    assert train.split_record_name == 'isic2018_task1_seed0.json'

    # The record, not a recomputation, decides: move two ids from train to val.
    moved = record['splits']['train'][:2]
    record['splits'] = dict(train=record['splits']['train'][2:],
                            val=sorted(record['splits']['val'] + moved))
    split_file.write_text(json.dumps(record))
    val = ISIC2018Task1Dataset(data_root=str(synthetic_root), split='val',
                               split_file=str(split_file))
    assert len(val) == 7
    assert set(moved) <= {os.path.basename(d['img_path'])[:-4] for d in val.load_data_list()}

    with pytest.raises(ValueError, match='isic2018_split.json" was made with split_seed=0, but '
                       'this run asks for split_seed=1'):
        ISIC2018Task1Dataset(data_root=str(synthetic_root), split='val', split_seed=1,
                             split_file=str(split_file))


def test_trainval_and_official_splits_neither_write_nor_read_the_split_file(synthetic_root,
                                                                           tmp_path):
    split_file = tmp_path / 'work' / 'split.json'
    for split in ('trainval', 'official_val', 'official_test'):
        dataset = ISIC2018Task1Dataset(data_root=str(synthetic_root), split=split,
                                       split_file=str(split_file))
        assert len(dataset) == {'trainval': 50, 'official_val': 3, 'official_test': 2}[split]
        assert dataset.divided_split() is None  # nothing for SplitRecordHook to record
    assert not (tmp_path / 'work').exists()
    # A record made with other arguments, which train and val would refuse, is not read.
    split_file.parent.mkdir()
    split_file.write_text(json.dumps(dict(meta=dict(split_seed=7), splits=dict(train=['x']))))
    trainval = ISIC2018Task1Dataset(data_root=str(synthetic_root), split='trainval',
                                    split_file=str(split_file))
    assert len(trainval) == 50
    with pytest.raises(ValueError, match='was made with'):
        ISIC2018Task1Dataset(data_root=str(synthetic_root), split='train',
                             split_file=str(split_file))


def test_split_file_must_fit_the_data_on_disk(synthetic_root, tmp_path):
    root = _copy_layout(synthetic_root, tmp_path / 'data')
    split_file = tmp_path / 'split.json'
    ISIC2018Task1Dataset(data_root=str(root), split='train', split_file=str(split_file))
    _jpeg(root / TRAIN_IN / 'ISIC_0999999.jpg', 32, 32)
    _mask(root / TRAIN_GT / 'ISIC_0999999_segmentation.png', 32, 32)
    with pytest.raises(ValueError, match=r'split.json" does not cover 1 ids.*ISIC_0999999'):
        ISIC2018Task1Dataset(data_root=str(root), split='train', split_file=str(split_file))
    for name in ('ISIC_0999999.jpg', 'ISIC_0000003.jpg'):
        os.remove(root / TRAIN_IN / name)
        os.remove(root / TRAIN_GT / name.replace('.jpg', '_segmentation.png'))
    with pytest.raises(ValueError, match=r'split.json" lists 1 ids that are not in the data '
                       r"\(e.g. \['ISIC_0000003'\]\)"):
        ISIC2018Task1Dataset(data_root=str(root), split='val', split_file=str(split_file))


def test_split_file_inside_data_root_is_refused(synthetic_root):
    inside = synthetic_root / 'splits' / 'split.json'
    with pytest.raises(ValueError, match='lies inside data_root') as err:
        ISIC2018Task1Dataset(data_root=str(synthetic_root), split='train',
                             split_file=str(inside))
    assert str(inside) in str(err.value) and str(synthetic_root) in str(err.value)
    assert not (synthetic_root / 'splits').exists()



def test_missing_data_root_says_what_and_where_to_get_it(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError, match='challenge.isic-archive.com/data/#2018') as err:
        ISIC2018Task1Dataset(data_root=str(missing))
    assert str(missing) in str(err.value)
    assert 'ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png' in str(err.value)


def test_missing_split_folder_is_named(synthetic_root, tmp_path):
    root = _copy_layout(synthetic_root, tmp_path / 'data')
    shutil.rmtree(root / 'ISIC2018_Task1_Test_GroundTruth')
    with pytest.raises(FileNotFoundError, match='ISIC2018_Task1_Test_GroundTruth" not found; '
                       'expected it to hold the masks'):
        ISIC2018Task1Dataset(data_root=str(root), split='official_test')


def test_image_without_mask_names_both_paths(synthetic_root, tmp_path):
    root = _copy_layout(synthetic_root, tmp_path / 'data')
    os.remove(root / TRAIN_GT / 'ISIC_0000007_segmentation.png')
    with pytest.raises(FileNotFoundError) as err:
        ISIC2018Task1Dataset(data_root=str(root), split='val')
    image = root / TRAIN_IN / 'ISIC_0000007.jpg'
    mask = root / TRAIN_GT / 'ISIC_0000007_segmentation.png'
    assert f'image "{image}" has no mask; expected "{mask}"' in str(err.value)


def test_mask_without_image_names_both_paths(synthetic_root, tmp_path):
    root = _copy_layout(synthetic_root, tmp_path / 'data')
    os.remove(root / TRAIN_IN / 'ISIC_0000007.jpg')
    with pytest.raises(FileNotFoundError) as err:
        ISIC2018Task1Dataset(data_root=str(root), split='train')
    image = root / TRAIN_IN / 'ISIC_0000007.jpg'
    mask = root / TRAIN_GT / 'ISIC_0000007_segmentation.png'
    assert f'mask "{mask}" has no image; expected "{image}"' in str(err.value)


def test_unpaired_files_found_by_the_checks_leave_no_split_record(synthetic_root, tmp_path):
    # Within collect_problems (check_dataset) the split is of the paired images only: it is not
    # written as the record that training would then refuse, nor checked against one.
    root = _copy_layout(synthetic_root, tmp_path / 'data')
    record = tmp_path / 'split.json'
    os.remove(root / TRAIN_GT / 'ISIC_0000007_segmentation.png')
    with collect_problems() as found:
        dataset = ISIC2018Task1Dataset(data_root=str(root), split='train',
                                       split_file=str(record))
    assert len(found) == 1 and not record.exists() and len(dataset) > 0
    for mask in (root / TRAIN_GT).glob('*_segmentation.png'):
        os.remove(mask)
    with collect_problems() as found, pytest.raises(ValueError) as err:
        ISIC2018Task1Dataset(data_root=str(root), split='train', split_file=str(record))
    assert str(err.value) == (f'ISIC2018Task1Dataset (split "train"): no image of '
                              f'"{root / TRAIN_IN}" has its mask in "{root / TRAIN_GT}".')
    # Without problems the record is written.
    ISIC2018Task1Dataset(data_root=str(synthetic_root), split='train', split_file=str(record))
    assert record.exists()


def test_misnamed_mask_is_refused(synthetic_root, tmp_path):
    root = _copy_layout(synthetic_root, tmp_path / 'data')
    shutil.copy(root / TRAIN_GT / 'ISIC_0000001_segmentation.png',
                root / TRAIN_GT / 'ISIC_0000001_mask.png')
    with pytest.raises(ValueError, match='ISIC_0000001_mask.png" is not named '
                       '<id>_segmentation.png'):
        ISIC2018Task1Dataset(data_root=str(root), split='train')


def test_empty_splits_are_refused(tmp_path, fixtures_dir):
    for folder in (TRAIN_IN, TRAIN_GT):
        (tmp_path / folder).mkdir()
    (tmp_path / TRAIN_IN / 'LICENSE.txt').write_text('licence\n')
    with pytest.raises(ValueError, match=f'no images .*{TRAIN_IN}'):
        ISIC2018Task1Dataset(data_root=str(tmp_path), split='trainval')
    for i in range(5):
        _jpeg(tmp_path / TRAIN_IN / f'ISIC_{i:07d}.jpg', 32, 32)
        _mask(tmp_path / TRAIN_GT / f'ISIC_{i:07d}_segmentation.png', 32, 32)
    with pytest.raises(ValueError, match='split "val" is empty: 5 training images with '
                       'val_fraction=0.1 leave none'):
        ISIC2018Task1Dataset(data_root=str(tmp_path), split='val')


@pytest.mark.parametrize('kwargs, match', [
    (dict(split='test'), "split must be one of .*'official_test'"),
    (dict(val_fraction=1.0), 'val_fraction must lie strictly between 0 and 1'),
    (dict(data_root=None), 'data_root is required'),
])
def test_bad_arguments_are_refused(synthetic_root, kwargs, match):
    kwargs = dict(dict(data_root=str(synthetic_root)), **kwargs)
    with pytest.raises(ValueError, match=match):
        ISIC2018Task1Dataset(**kwargs)


def test_transforms_can_be_given_as_objects(synthetic_root):
    dataset = ISIC2018Task1Dataset(data_root=str(synthetic_root), split='official_val',
                                   pipeline=[LoadImageStrict(), LoadBinaryMask()])
    sample = dataset[0]
    assert sample['img'].shape == (32, 32, 3)
    assert sample['gt_seg_map'].shape == (32, 32)
    assert sample['seg_fields'] == ['gt_seg_map']
