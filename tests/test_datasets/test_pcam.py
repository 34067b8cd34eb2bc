import gzip
import os
import pickle
import shutil

import h5py
import numpy as np
import pytest
import torch
from mmengine.config import Config

from medtrans.datasets import PCamDataset, check_dataset
from medtrans.datasets.transforms import LoadPCamPatch
from medtrans.setup_env import register_all_modules
from medtrans.testing.layouts.pcam import write_pcam_split

LABELS = {'train': [0, 1, 1, 0, 1, 0, 0, 1, 1, 1], 'valid': [1, 0, 0], 'test': [0, 1]}


def _patches(n, seed):
    return np.random.RandomState(seed).randint(0, 256, (n, 96, 96, 3)).astype(np.uint8)


@pytest.fixture
def root(tmp_path):
    """All three official splits, contiguous and without checksums, as published."""
    root = tmp_path / 'pcam'
    for seed, (part, labels) in enumerate(LABELS.items()):
        write_pcam_split(str(root), part, labels, patches=_patches(len(labels), seed))
    return root


def test_official_splits_read_lazily(root):
    pipeline = [dict(type='LoadPCamPatch')]
    for seed, (split, part) in enumerate((('train', 'train'), ('val', 'valid'),
                                          ('test', 'test'))):
        dataset = PCamDataset(data_root=str(root), split=split, pipeline=pipeline)
        x_path = str(root / f'camelyonpatch_level_2_split_{part}_x.h5')
        assert len(dataset) == len(LABELS[part])
        patches = _patches(len(LABELS[part]), seed)
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            assert (info['h5_path'], info['h5_index'], info['sample_id'], info['gt_label']) == (
                x_path, i, f'{split}/{i:06d}', LABELS[part][i])
            img = dataset[i]['img']
            # BGR, like LoadImageStrict: the RGB patch with its channels reversed.
            np.testing.assert_array_equal(img, patches[i][:, :, ::-1])
            assert img.flags['C_CONTIGUOUS']
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'val', 'test'\]"):
        PCamDataset(data_root=str(root), split='valid')


def test_building_reads_labels_only_and_a_sample_reads_its_row(tmp_path):
    """A damaged patch (caught by its chunk's checksum) fails only the sample that reads it."""
    root = tmp_path / 'pcam'
    x_path, _ = write_pcam_split(str(root), 'train', LABELS['train'], checksums=True)
    with h5py.File(x_path, 'w', libver='latest') as f:
        f.create_dataset('x', data=_patches(10, 0), chunks=(1, 96, 96, 3), fletcher32=True)
        offset = f['x'].id.get_chunk_info(7).byte_offset
    with open(x_path, 'r+b') as f:
        f.seek(offset + 100)
        byte = f.read(1)
        f.seek(offset + 100)
        f.write(bytes([byte[0] ^ 1]))
    dataset = PCamDataset(data_root=str(root), split='train',
                          pipeline=[dict(type='LoadPCamPatch')])
    for i in (0, 6, 8, 9):
        np.testing.assert_array_equal(dataset[i]['img'], _patches(10, 0)[i][:, :, ::-1])
    with pytest.raises(ValueError, match=r'split_train_x\.h5": patch 7 could not be read'):
        dataset[7]


def test_workers_load_the_same_samples(root):
    """Two DataLoader workers (forked after the main process opened the file) give exactly the
    samples of loading in the main process."""
    dataset = PCamDataset(data_root=str(root), split='train',
                          pipeline=[dict(type='LoadPCamPatch')])
    dataset[0]  # the main process now holds an open handle, which the workers must not use

    def load(num_workers):
        loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=num_workers,
                                             collate_fn=list)
        return [(s['sample_id'], s['gt_label'], s['img']) for batch in loader for s in batch]

    serial, parallel = load(0), load(2)
    assert [s[:2] for s in parallel] == [s[:2] for s in serial]
    assert len(serial) == 10
    for (_, _, a), (_, _, b) in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


def test_transform_pickles_without_handles(root):
    transform = LoadPCamPatch()
    x_path = str(root / 'camelyonpatch_level_2_split_train_x.h5')
    first = transform(dict(h5_path=x_path, h5_index=3))['img']
    assert transform._files
    copy = pickle.loads(pickle.dumps(transform))
    assert copy._files == {}
    np.testing.assert_array_equal(copy(dict(h5_path=x_path, h5_index=3))['img'], first)
    with pytest.raises(ValueError, match=r'holds 10 patches; row 10 asked for'):
        transform(dict(h5_path=x_path, h5_index=10))
    assert LoadPCamPatch(to_float32=True)(dict(h5_path=x_path, h5_index=3))['img'].dtype == \
        np.float32


def test_gzipped_files_get_the_command_that_decompresses_them(root):
    y_path = str(root / 'camelyonpatch_level_2_split_valid_y.h5')
    with open(y_path, 'rb') as src, gzip.open(y_path + '.gz', 'wb') as dst:
        shutil.copyfileobj(src, dst)
    os.remove(y_path)
    with pytest.raises(FileNotFoundError, match=f'gunzip -k "{y_path}.gz"'):
        PCamDataset(data_root=str(root), split='val')
    os.remove(y_path + '.gz')
    with pytest.raises(FileNotFoundError, match='split_valid_y.h5" not found; expected the split'):
        PCamDataset(data_root=str(root), split='val')
    # The other splits do not need the valid files.
    assert len(PCamDataset(data_root=str(root), split='test')) == 2


def _rewrite(path, name, data):
    with h5py.File(path, 'w') as f:
        f.create_dataset(name, data=data)


@pytest.mark.parametrize('xy, name, data, match', [
    ('y', 'y', np.zeros((9, 1, 1, 1), np.uint8),
     r'split_train_x\.h5" holds 10 patches but ".*split_train_y\.h5" holds 9 labels'),
    ('x', 'x', _patches(11, 0),
     r'split_train_x\.h5" holds 11 patches but ".*split_train_y\.h5" holds 10 labels'),
    ('y', 'y', np.zeros((10, ), np.uint8), r'"y" is uint8 of shape \(10,\)'),
    ('y', 'y', np.full((10, 1, 1, 1), 2, np.uint8), 'label 0 is 2 \\(10 labels not 0 or 1\\)'),
    ('y', 'y', np.zeros((10, 1, 1, 1), np.float32), '"y" is float32'),
    ('y', 'labels', np.zeros((10, 1, 1, 1), np.uint8), 'could not be read'),
    ('x', 'x', np.zeros((10, 32, 32, 3), np.uint8), r'"x" is uint8 of shape \(10, 32, 32, 3\)'),
    ('x', 'x', np.zeros((10, 96, 96, 3), np.float32), r'"x" is float32'),
    ('x', 'images', _patches(10, 0), 'has no readable dataset "x"'),
])
def test_bad_files_are_named(root, xy, name, data, match):
    path = str(root / f'camelyonpatch_level_2_split_train_{xy}.h5')
    _rewrite(path, name, data)
    with pytest.raises(ValueError, match=match) as info:
        PCamDataset(data_root=str(root), split='train')
    assert path in str(info.value)


def test_not_hdf5_is_named(root):
    path = root / 'camelyonpatch_level_2_split_test_x.h5'
    path.write_bytes(b'not hdf5')
    with pytest.raises(ValueError, match='could not be opened as HDF5') as info:
        PCamDataset(data_root=str(root), split='test')
    assert str(path) in str(info.value)


def test_check_dataset_scans_the_patches(tmp_path):
    register_all_modules(init_default_scope=False)
    root = tmp_path / 'pcam'
    for part, labels in LABELS.items():
        write_pcam_split(str(root), part, labels)
    loaders = {f'{split}_dataloader': dict(dataset=dict(
        type='PCamDataset', data_root=str(root), split=split,
        pipeline=[dict(type='LoadPCamPatch'), dict(type='mmpretrain.PackInputs')]))
        for split in ('train', 'val', 'test')}
    report = check_dataset(Config(dict(default_scope='medtrans', **loaders)), num_workers=2)
    assert report.ok, report.format()
    assert [s.num_checked for s in report.splits] == [10, 3, 2]
