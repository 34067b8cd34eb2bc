"""APTOS 2019: the Kaggle layout, the study's 70/15/15 split, bad tables and images."""
import cv2
import numpy as np
import pytest

from medtrans.datasets import APTOS2019Dataset, LoadImageStrict
from medtrans.datasets.utils import DataProblems
from medtrans.testing import write_csv, write_images

# The grade counts of the 3,662 labelled images of the real competition set.
REAL_GRADE_COUNTS = (1805, 370, 999, 193, 295)


def _layout(root, grades, images=True):
    """train.csv with 12-hex-digit ids and, if asked, 16x16 images (empty files otherwise)."""
    ids = [f'{i:012x}' for i in range(len(grades))]
    write_csv(str(root / 'train.csv'), [('id_code', 'diagnosis')] +
              [(i, str(g)) for i, g in zip(ids, grades)])
    if images:
        write_images(str(root / 'train_images'), [f'{i}.png' for i in ids], seed=0, size=16)
    else:
        # The dataset checks that images exist; decoding them is the pipeline's job.
        (root / 'train_images').mkdir()
        for i in ids:
            (root / 'train_images' / f'{i}.png').touch()
    return ids


@pytest.fixture(scope='module')
def real_sized(tmp_path_factory):
    root = tmp_path_factory.mktemp('aptos')
    grades = np.repeat(np.arange(5), REAL_GRADE_COUNTS)
    np.random.RandomState(0).shuffle(grades)
    _layout(root, grades.tolist(), images=False)
    return root


def test_split_of_the_real_grade_counts_is_exact_and_stratified(real_sized, tmp_path):
    split_file = tmp_path / 'splits' / 'aptos.json'
    parts = {s: APTOS2019Dataset(str(real_sized), split=s, split_file=str(split_file))
             for s in ('train', 'val', 'test')}
    # Largest remainder of 3662 x (0.7, 0.15, 0.15) = 2563.4, 549.3, 549.3.
    assert {s: len(d) for s, d in parts.items()} == dict(train=2564, val=549, test=549)
    ids = [set(d.get_data_info(i)['sample_id'] for i in range(len(d))) for d in parts.values()]
    assert set.union(*ids) == {f'{i:012x}' for i in range(3662)}
    assert sum(map(len, ids)) == 3662
    for split, fraction in (('train', 0.7), ('val', 0.15), ('test', 0.15)):
        counts = np.bincount(parts[split].get_gt_labels(), minlength=5)
        # Each grade is divided by the fractions, to within the one image that rounding moves.
        assert np.all(np.abs(counts - np.array(REAL_GRADE_COUNTS) * fraction) <= 1), (split,
                                                                                      counts)
    again = APTOS2019Dataset(str(real_sized), split='val')
    assert again.get_data_info(0) == parts['val'].get_data_info(0)
    assert [again.get_data_info(i)['sample_id'] for i in range(len(again))] == sorted(ids[1])


def test_samples_carry_id_grade_and_image(tmp_path):
    grades = [0, 1, 2, 3, 4, 2]
    ids = _layout(tmp_path, grades)
    # A 16-bit grey fundus photo: decoded to 8 bits on 3 channels, by round(v / 257).
    deep = np.random.RandomState(1).randint(0, 65536, (16, 16)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / 'train_images' / f'{ids[5]}.png'), deep)
    ds = APTOS2019Dataset(str(tmp_path), split='all', pipeline=[LoadImageStrict()])
    assert ds.metainfo['classes'] == ('No DR', 'Mild', 'Moderate', 'Severe', 'Proliferative DR')
    assert [(ds[i]['sample_id'], ds[i]['gt_label']) for i in range(6)] == list(zip(ids, grades))
    img = ds[5]['img']
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8
    expected = np.round(deep / 257).astype(np.uint8)
    assert all(np.array_equal(img[..., c], expected) for c in range(3))


@pytest.mark.parametrize('rows, error, match', [
    ([('id_code', 'diagnosis'), ('000000000000', '5')], ValueError,
     r"train.csv\" line 2: diagnosis is '5'; expected a grade 0, 1, 2, 3 or 4"),
    ([('id_code', 'diagnosis'), ('000000000000', '2.0')], ValueError,
     "line 2: diagnosis is '2.0'"),
    ([('id_code', 'diagnosis'), ('000000000000', '')], ValueError, "line 2: diagnosis is ''"),
    ([('id_code', 'diagnosis'), ('000000000000', '1'), ('000000000000', '2')], ValueError,
     'line 3: repeats the image id "000000000000" of line 2'),
    ([('id_code', 'diagnosis'), ('000000000000', '1'), ('00000000000f', '2')], FileNotFoundError,
     r'line 3: image ".*train_images/00000000000f.png" not found'),
    ([('id_code', 'diagnosis', 'notes'), ('000000000000', '1', '')], ValueError,
     r"the unknown columns \['notes'\]"),
    ([('id', 'diagnosis'), ('000000000000', '1')], ValueError, r"lacks the columns \['id_code'\]"),
    ([('id_code', 'diagnosis'), ('000000000000', '1', '1')], ValueError, 'line 2: has 3 cells'),
])
def test_bad_tables_name_the_file_and_line(tmp_path, rows, error, match):
    write_images(str(tmp_path / 'train_images'), ['000000000000.png'], seed=0, size=16)
    write_csv(str(tmp_path / 'train.csv'), rows)
    with pytest.raises(error, match=match):
        APTOS2019Dataset(str(tmp_path), split='all')


def test_missing_layout_parts_and_unlabelled_images(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'data_root ".*nothing" not found; expected the '
                                                r'official layout:\n.*\n    train.csv'):
        APTOS2019Dataset(str(tmp_path / 'nothing'))
    with pytest.raises(FileNotFoundError, match='APTOS 2019 label table ".*train.csv" not found'):
        APTOS2019Dataset(str(tmp_path))
    ids = _layout(tmp_path, [0, 1, 2, 3, 4])
    write_images(str(tmp_path / 'train_images'), ['ffffffffffff.png'], seed=1, size=16)
    with pytest.raises(ValueError, match='image ".*ffffffffffff.png" has no row in APTOS 2019 '
                                         'label table'):
        APTOS2019Dataset(str(tmp_path), split='all')
    (tmp_path / 'train_images' / 'ffffffffffff.png').unlink()
    (tmp_path / 'train_images' / f'{ids[2]}.png').unlink()
    with pytest.raises(FileNotFoundError, match=f'line 4: image ".*{ids[2]}.png" not found'):
        APTOS2019Dataset(str(tmp_path), split='all')


def test_corrupt_image_is_refused_naming_it(tmp_path):
    ids = _layout(tmp_path, [0, 1, 2, 3, 4])
    path = tmp_path / 'train_images' / f'{ids[1]}.png'
    path.write_bytes(path.read_bytes()[:40])
    ds = APTOS2019Dataset(str(tmp_path), split='all', pipeline=[LoadImageStrict()],
                          test_mode=True)
    with pytest.raises(ValueError, match=f'"{path}" could not be decoded'):
        ds[1]


def test_every_bad_row_is_named_in_one_error(tmp_path):
    ids = _layout(tmp_path, [0, 1, 2, 3, 4, 0])
    write_csv(str(tmp_path / 'train.csv'), [('id_code', 'diagnosis'), (ids[0], '5'),
                                            (ids[1], '1'), (ids[2], '2.0'), (ids[3], '3'),
                                            (ids[4], '3.0'), (ids[5], '0')])
    with pytest.raises(DataProblems) as info:
        APTOS2019Dataset(str(tmp_path), split='all')
    table = tmp_path / 'train.csv'
    assert str(info.value).splitlines()[1:] == [
        f'  - APTOS 2019 label table "{table}" line {line}: diagnosis is {cell!r}; expected a '
        'grade 0, 1, 2, 3 or 4.' for line, cell in ((2, '5'), (4, '2.0'), (6, '3.0'))]
