"""CustomClsDataset: a user's own images as class folders or a CSV table, single/multi-label."""
import os

import numpy as np
import pytest
from mmpretrain.datasets.transforms import PackInputs

from medtrans.datasets import CustomClsDataset, LoadImageStrict
from medtrans.testing import write_csv, write_images


def _infos(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


@pytest.fixture
def folders(tmp_path):
    root = tmp_path / 'data'
    write_images(str(root), ['benign/a.png', 'benign/2021/b.jpg', 'malignant/c.PNG',
                             'normal/d.tif'], seed=0, size=16)
    (root / 'benign' / '.DS_Store').write_bytes(b'\0')
    (root / 'README.txt').write_text('my set\n')
    return root


def test_class_folders(folders):
    ds = CustomClsDataset(str(folders), split='all', pipeline=[LoadImageStrict()])
    assert ds.metainfo['classes'] == ('benign', 'malignant', 'normal')
    assert [(i['sample_id'], i['gt_label']) for i in _infos(ds)] == [
        ('benign/2021/b.jpg', 0), ('benign/a.png', 0), ('malignant/c.PNG', 1),
        ('normal/d.tif', 2)]
    assert ds[3]['img'].shape == (16, 16, 3)
    given = CustomClsDataset(str(folders), split='all', classes=('normal', 'benign', 'malignant'))
    assert [i['gt_label'] for i in _infos(given)] == [1, 1, 2, 0]


def test_bad_class_folders(folders):
    with pytest.raises(ValueError, match=r"has the class folders \['benign', 'malignant', "
                                         r"'normal'\]; expected one per class of \['benign'"):
        CustomClsDataset(str(folders), split='all', classes=('benign', 'malignant'))
    (folders / 'malignant' / 'notes.txt').write_text('x')
    with pytest.raises(ValueError, match='"[^"]*malignant/notes.txt" in a class folder is not an '
                                         'image'):
        CustomClsDataset(str(folders), split='all')
    (folders / 'malignant' / 'notes.txt').unlink()
    write_images(str(folders), ['loose.png'], seed=1, size=16)
    with pytest.raises(ValueError, match='image "[^"]*loose.png" is not in a class folder'):
        CustomClsDataset(str(folders), split='all')
    (folders / 'loose.png').unlink()
    os.symlink(folders / 'gone.png', folders / 'normal' / 'e.png')
    with pytest.raises(FileNotFoundError, match='"[^"]*normal/e.png" is not a readable file'):
        CustomClsDataset(str(folders), split='all')
    with pytest.raises(FileNotFoundError, match='image folder "[^"]*nope" not found'):
        CustomClsDataset(str(folders), img_dir='nope', split='all')
    with pytest.raises(ValueError, match='multi_label=True needs a CSV table'):
        CustomClsDataset(str(folders), multi_label=True)


def _table(root, rows, header=('path', 'label', 'patient')):
    write_csv(str(root / 'labels.csv'), [header] + rows)
    write_images(str(root / 'img'), sorted({r[0] for r in rows}), seed=0, size=16)


def test_csv_single_label_classes_in_numeric_order_and_grouped_split(tmp_path):
    rows = [(f'x{i:02d}.png', str([2, 10, 1][i % 3]), f'p{i // 2}') for i in range(60)]
    _table(tmp_path, rows)
    kwargs = dict(ann_file='labels.csv', img_dir='img', group_column='patient')
    every = CustomClsDataset(str(tmp_path), split='all', **kwargs)
    assert every.metainfo['classes'] == ('1', '2', '10')
    assert [i['gt_label'] for i in _infos(every)][:3] == [1, 2, 0]
    assert every.get_data_info(0)['img_path'] == str(tmp_path / 'img' / 'x00.png')
    where = {}
    for split in ('train', 'val', 'test'):
        for info in _infos(CustomClsDataset(str(tmp_path), split=split, **kwargs)):
            where.setdefault(info['group'], set()).add(split)
    assert len(where) == 30 and all(len(s) == 1 for s in where.values())


@pytest.mark.parametrize('rows, kwargs, error, match', [
    ([('a.png', 'cat', 'p1'), ('b.png', 'dog', 'p1')], dict(classes=('cat', 'cow')), ValueError,
     r"line 3: label is 'dog'; expected one of the classes \['cat', 'cow'\]"),
    ([('a.png', 'cat', 'p1'), ('b.png', '', 'p1')], {}, ValueError,
     r"line 3: label is ''; expected one of the classes \['cat'\]"),
    ([('a.png', 'cat', 'p1'), ('a.png', 'cat', 'p1')], {}, ValueError,
     'line 3: repeats the image "a.png" of line 2'),
    ([('a.png', 'cat', ''), ('b.png', 'cat', 'p1')], dict(group_column='patient'), ValueError,
     'line 2: patient is blank; expected a group name'),
    ([('a.png', 'cat', 'p1'), ('', 'cat', 'p1')], {}, ValueError,
     'line 3: path is blank; expected an image path'),
    ([('a.png', 'cat', 'p1'), ('b.png', 'cat', 'p1')], dict(label_column='diagnosis'),
     ValueError, r"lacks the columns \['diagnosis'\]"),
])
def test_bad_csv_rows_name_the_table_and_line(tmp_path, rows, kwargs, error, match):
    _table(tmp_path, [r for r in rows if r[0]])
    write_csv(str(tmp_path / 'labels.csv'), [('path', 'label', 'patient')] + rows)
    with pytest.raises(error, match=match) as info:
        CustomClsDataset(str(tmp_path), ann_file='labels.csv', img_dir='img', split='all',
                         **kwargs)
    assert 'labels.csv' in str(info.value)


def test_csv_missing_image_names_table_line_and_image(tmp_path):
    _table(tmp_path, [('a.png', 'cat', 'p1'), ('sub/b.png', 'dog', 'p2')])
    (tmp_path / 'img' / 'sub' / 'b.png').unlink()
    with pytest.raises(FileNotFoundError, match=r'labels.csv" line 3: image "[^"]*img/sub/b.png" '
                                                r'not found; expected every path relative to '
                                                r'"[^"]*img"\.$'):
        CustomClsDataset(str(tmp_path), ann_file='labels.csv', img_dir='img', split='all')


def test_csv_split_column_gives_the_users_splits(tmp_path):
    rows = [('a.png', 'cat', 'train'), ('b.png', 'dog', 'train'), ('c.png', 'dog', 'test')]
    _table(tmp_path, rows, header=('path', 'label', 'fold'))
    kwargs = dict(ann_file='labels.csv', img_dir='img', split_column='fold')
    train = CustomClsDataset(str(tmp_path), split='train', **kwargs)
    test = CustomClsDataset(str(tmp_path), split='test', **kwargs)
    assert [i['sample_id'] for i in _infos(train)] == ['a.png', 'b.png']
    assert [(i['sample_id'], i['gt_label']) for i in _infos(test)] == [('c.png', 1)]
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'test'\], got 'val'"):
        CustomClsDataset(str(tmp_path), split='val', **kwargs)
    with pytest.raises(ValueError, match='split_column gives the splits'):
        CustomClsDataset(str(tmp_path), split='train', split_fractions=dict(train=1.0), **kwargs)


def test_csv_multi_label_with_unknown_entries(tmp_path):
    rows = [('a.png', '1', '0', '-1'), ('b.png', '0.0', '1.0', '1'), ('c.png', '0', '0', '0')]
    _table(tmp_path, rows, header=('path', 'effusion', 'edema', 'nodule'))
    ds = CustomClsDataset(str(tmp_path), ann_file='labels.csv', img_dir='img', multi_label=True,
                          split='all', pipeline=[LoadImageStrict(), PackInputs()])
    assert ds.metainfo['classes'] == ('effusion', 'edema', 'nodule')
    scores = [i['gt_score'] for i in _infos(ds)]
    assert all(s.dtype == np.float32 for s in scores)
    assert np.array_equal(np.stack(scores), [[1, 0, -1], [0, 1, 1], [0, 0, 0]])
    assert ds[0]['data_samples'].gt_score.tolist() == [1, 0, -1]
    assert [ds.get_cat_ids(i) for i in range(3)] == [[0], [1, 2], []]
    # Classes given: the table must have exactly those columns besides the path.
    with pytest.raises(ValueError, match=r"the unknown columns \['nodule'\]"):
        CustomClsDataset(str(tmp_path), ann_file='labels.csv', img_dir='img', multi_label=True,
                         classes=('effusion', 'edema'), split='all')
    write_csv(str(tmp_path / 'labels.csv'), [('path', 'effusion', 'edema', 'nodule'),
                                             ('a.png', '1', 'yes', '0')])
    with pytest.raises(ValueError, match=r"labels.csv\" line 2: edema is 'yes'; expected 1, 0 or "
                                         r'-1 \(unknown\)'):
        CustomClsDataset(str(tmp_path), ann_file='labels.csv', img_dir='img', multi_label=True,
                         split='all')
