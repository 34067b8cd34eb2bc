import csv
import os
import os.path as osp
import shutil
import subprocess
import sys
from collections import Counter

import cv2
import numpy as np
import pydicom
import pytest
from mmengine.config import Config
from pydicom.pixels import apply_modality_lut, apply_windowing

from medtrans.datasets import CBISDDSMDataset, check_dataset
from medtrans.datasets.cbis_ddsm import (
    CBIS_DDSM_TABLES,
    convert_cbis_ddsm_to_png,
    read_cbis_ddsm_images,
    read_cbis_ddsm_table,
)
from medtrans.datasets.transforms import LoadDicom
from medtrans.datasets.transforms.dicom import read_dicom_uint8
from medtrans.setup_env import register_all_modules
from medtrans.testing.layouts.cbis_ddsm import (
    CALC_HEADER,
    MASS_HEADER,
    cbis_ddsm_layout,
    cbis_ddsm_row,
    write_mammogram_dicom,
)
from medtrans.testing.layouts.classification import write_csv

TABLES = [name for name, _, _ in CBIS_DDSM_TABLES]


def _brute_force(fixtures):
    """Rows per table, and image -> in a mass table, from csv.DictReader and the fields."""
    rows, images = {}, {}
    for name in TABLES:
        with open(fixtures / 'cbis_ddsm' / name, newline='') as f:
            rows[name] = list(csv.DictReader(f))
        for row in rows[name]:
            key = (row['patient_id'], row['left or right breast'], row['image view'])
            images[key] = images.get(key, False) or row['abnormality type'] == 'mass'
    return rows, images


def test_real_tables_parsed_exactly(fixtures_dir):
    reference, ref_images = _brute_force(fixtures_dir)
    counts = {}
    for name, kind, prefix in CBIS_DDSM_TABLES:
        path = str(fixtures_dir / 'cbis_ddsm' / name)
        rows = read_cbis_ddsm_table(path, kind, prefix)
        counts[name] = len(rows)
        assert [image_file for *_, image_file in rows] == [
            r['image file path'] for r in reference[name]]
        assert [image_id for _, _, image_id, _ in rows] == [
            f"{r['patient_id']}_{r['left or right breast']}_{r['image view']}"
            for r in reference[name]]
    # Counted by hand once; the brute force above agrees.
    assert counts == {name: len(reference[name]) for name in TABLES}
    assert counts == {'mass_case_description_train_set.csv': 1318,
                      'mass_case_description_test_set.csv': 378,
                      'calc_case_description_train_set.csv': 1546,
                      'calc_case_description_test_set.csv': 326}

    images = read_cbis_ddsm_images(str(fixtures_dir / 'cbis_ddsm'))
    assert {(i.sample_id, i.has_mass) for i in images} == {
        ('_'.join(key), mass) for key, mass in ref_images.items()}
    assert len(images) == 3032
    assert sum(i.has_mass for i in images) == 1592
    assert len({i.patient_id for i in images}) == 1566
    # A mammogram in both families is read from its mass folder.
    keys = {family: {f"{r['patient_id']}_{r['left or right breast']}_{r['image view']}"
                     for name in TABLES if name.startswith(family) for r in reference[name]}
            for family in ('mass', 'calc')}
    both = [i for i in images if i.sample_id in keys['mass'] & keys['calc']]
    assert len(both) == 71
    assert all(i.has_mass and i.subject.startswith('Mass-') for i in both)


def test_real_tables_have_the_published_quirks(fixtures_dir):
    with open(fixtures_dir / 'cbis_ddsm' / TABLES[0], newline='') as f:
        mass = list(csv.reader(f))
    with open(fixtures_dir / 'cbis_ddsm' / TABLES[2], newline='') as f:
        calc = list(csv.reader(f))
    assert tuple(mass[0]) == MASS_HEADER and tuple(calc[0]) == CALC_HEADER
    assert mass[1][13].endswith('\n') and calc[1][12].endswith('\n')


@pytest.fixture(scope='module')
def real_png_root(tmp_path_factory, fixtures_dir):
    """The real tables with a tiny converted PNG per mammogram."""
    root = tmp_path_factory.mktemp('cbis_real')
    for name in TABLES:
        shutil.copy(fixtures_dir / 'cbis_ddsm' / name, root / name)
    (root / 'CBIS-DDSM-png').mkdir()
    png = cv2.imencode('.png', np.zeros((4, 4), np.uint8))[1].tobytes()
    for image in read_cbis_ddsm_images(str(root)):
        (root / 'CBIS-DDSM-png' / f'{image.sample_id}.png').write_bytes(png)
    return root


def test_real_tables_split_by_patient(real_png_root):
    splits = {
        split: CBISDDSMDataset(data_root=str(real_png_root), split=split, img_format='png')
        for split in ('train', 'val', 'test')
    }
    infos = {split: [d.get_data_info(i) for i in range(len(d))] for split, d in splits.items()}
    ids = {split: {info['sample_id'] for info in split_infos}
           for split, split_infos in infos.items()}
    patients = {split: {info['patient_id'] for info in split_infos}
                for split, split_infos in infos.items()}
    assert sum(map(len, ids.values())) == len(set.union(*ids.values())) == 3032
    for a, b in (('train', 'val'), ('train', 'test'), ('val', 'test')):
        assert not patients[a] & patients[b]
    sizes = {split: len(split_ids) for split, split_ids in ids.items()}
    # Grouped by patient (1 to 8 mammograms each): within a few images of 80/10/10.
    assert abs(sizes['train'] - 0.8 * 3032) < 10 and abs(sizes['val'] - 303) < 10
    for split_infos in infos.values():
        positive = np.mean([info['gt_label'] for info in split_infos])
        assert abs(positive - 1592 / 3032) < 0.02
    again = CBISDDSMDataset(data_root=str(real_png_root), split='val', img_format='png')
    assert [again.get_data_info(i)['sample_id'] for i in range(len(again))] == sorted(ids['val'])


def _stored(rng, shape=(40, 32), dtype=np.uint16, high=4096):
    info = np.iinfo(dtype)
    return rng.randint(max(info.min, -high), min(info.max, high), shape).astype(dtype)


@pytest.mark.parametrize('photometric', ['MONOCHROME1', 'MONOCHROME2'])
@pytest.mark.parametrize('dtype, window, rescale', [
    (np.uint16, (2000.3, 1500.0), None),
    (np.uint16, None, None),
    (np.uint16, (-900.0, 2500.0), (1.0, -1024.0)),
    (np.int16, (10.0, 300.0), None),
    (np.int16, None, (2.0, 5.0)),
    (np.uint8, (100.0, 40.0), None),
])
def test_dicom_to_8bit_follows_the_documented_rule(tmp_path, photometric, dtype, window,
                                                   rescale):
    rng = np.random.RandomState(0)
    stored = _stored(rng, dtype=dtype)
    path = str(tmp_path / 'a.dcm')
    write_mammogram_dicom(path, stored, photometric, window, rescale)
    got = read_dicom_uint8(path)

    # Brute force of the rule, pixel by pixel in float64.
    values = stored.astype(np.float64)
    if rescale is not None:
        values = values * rescale[0] + rescale[1]
    if window is not None:
        center, width = window
        unit = np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
    else:
        unit = (values - values.min()) / (values.max() - values.min())
    if photometric == 'MONOCHROME1':
        unit = 1 - unit
    expected = np.floor(unit * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(got, expected)

    if window is not None:
        # pydicom's own windowing, rescaled from its output range to [0, 1], agrees.
        ds = pydicom.dcmread(path)
        windowed = apply_windowing(apply_modality_lut(ds.pixel_array, ds), ds)
        bits = 8 * np.dtype(dtype).itemsize
        low = -(2 ** (bits - 1)) if np.dtype(dtype).kind == 'i' else 0
        low, high = low, low + 2 ** bits - 1
        if rescale is not None:
            low, high = low * rescale[0] + rescale[1], high * rescale[0] + rescale[1]
        reference = (windowed - low) / (high - low)
        if photometric == 'MONOCHROME1':
            reference = 1 - reference
        np.testing.assert_allclose(unit, reference, rtol=0, atol=1e-12)


def test_dicom_window_functions(tmp_path):
    stored = np.arange(0, 40 * 32, dtype=np.uint16).reshape(40, 32)
    path = str(tmp_path / 'a.dcm')
    write_mammogram_dicom(path, stored, window=(600.0, 400.0))
    ds = pydicom.dcmread(path)
    ds.VOILUTFunction = 'LINEAR_EXACT'
    ds.save_as(path)
    unit = np.clip((stored - 600.0) / 400.0 + 0.5, 0, 1)
    np.testing.assert_array_equal(read_dicom_uint8(path),
                                  np.floor(unit * 255 + 0.5).astype(np.uint8))
    ds.VOILUTFunction = 'SIGMOID'
    ds.save_as(path)
    with pytest.raises(ValueError, match=r'a\.dcm.*SIGMOID.*expected LINEAR'):
        read_dicom_uint8(path)


def _edited(path, edit):
    ds = pydicom.dcmread(path)
    edit(ds)
    ds.save_as(path)


@pytest.mark.parametrize('damage, match', [
    (lambda p: open(p, 'wb').close(), 'could not be read as a DICOM image'),
    (lambda p: open(p, 'wb').write(b'not a dicom file' * 20), 'could not be read as a DICOM'),
    (lambda p: open(p, 'r+b').truncate(os.path.getsize(p) - 3), 'Pixel Data holds'),
    (lambda p: _edited(p, lambda ds: setattr(ds, 'Rows', ds.Rows - 1)), 'Pixel Data holds'),
    (lambda p: _edited(p, lambda ds: setattr(ds, 'PhotometricInterpretation', 'RGB')),
     'expected MONOCHROME1 or MONOCHROME2'),
    (lambda p: _edited(p, lambda ds: delattr(ds, 'WindowWidth')), 'expected both or neither'),
    (lambda p: _edited(p, lambda ds: delattr(ds, 'PixelData')), 'no \\(7FE0,0010\\) Pixel'),
    (lambda p: _edited(p, lambda ds: setattr(ds, 'BitsAllocated', 32)), 'Bits Allocated'),
])
def test_corrupt_dicom_is_named(tmp_path, damage, match):
    path = str(tmp_path / 'mammogram.dcm')
    write_mammogram_dicom(path, _stored(np.random.RandomState(0)), window=(2048, 4096))
    damage(path)
    with pytest.raises(ValueError, match=match) as info:
        LoadDicom()(dict(img_path=path))
    assert path in str(info.value)
    with pytest.raises(FileNotFoundError, match='gone.dcm'):
        LoadDicom()(dict(img_path=str(tmp_path / 'gone.dcm')))


@pytest.fixture
def layout(tmp_path):
    return cbis_ddsm_layout(str(tmp_path / 'data'))


def _infos(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def test_synthetic_layout_labels_and_files(layout):
    dataset = CBISDDSMDataset(**layout.dataset_cfg, pipeline=[dict(type='LoadDicom')])
    infos = _infos(dataset)
    assert [(i['sample_id'], i['gt_label'], i['patient_id']) for i in infos] == [
        ('P_00001_LEFT_CC', 1, 'P_00001'), ('P_00001_LEFT_MLO', 1, 'P_00001'),
        ('P_00002_RIGHT_CC', 0, 'P_00002'), ('P_00003_LEFT_MLO', 1, 'P_00003'),
        ('P_00004_RIGHT_CC', 0, 'P_00004')]
    assert sorted(i['img_path'] for i in infos) == layout.dicom_files
    # P_00003_LEFT_MLO is also in a calcification table: its mass copy is read.
    assert '/Mass-Test_P_00003_LEFT_MLO/' in infos[3]['img_path']
    calc_copy = [p for p in _walk_dcm(layout.root) if '/Calc-Test_P_00003_LEFT_MLO/' in p]
    assert len(calc_copy) == 1 and calc_copy[0] not in layout.dicom_files
    sample = dataset[3]
    np.testing.assert_array_equal(sample['img'][:, :, 0], read_dicom_uint8(infos[3]['img_path']))
    assert sample['img'].shape == (40, 32, 3)


def _walk_dcm(root):
    return [osp.join(d, n) for d, _, names in os.walk(root) for n in names if n.endswith('.dcm')]


def test_nbia_download_layout(layout):
    """The DICOM files as the NBIA Data Retriever names them: found under the subject folder."""
    reference = _infos(CBISDDSMDataset(**layout.dataset_cfg))
    for path in layout.dicom_files:
        subject_dir = osp.dirname(osp.dirname(osp.dirname(path)))
        target = osp.join(subject_dir, '07-20-2016-DDSM-74994',
                          '1.000000-full mammogram images-24515', '1-1.dcm')
        os.makedirs(osp.dirname(target))
        os.replace(path, target)
        shutil.rmtree(osp.dirname(osp.dirname(path)))
    moved = _infos(CBISDDSMDataset(**layout.dataset_cfg))
    assert [i['sample_id'] for i in moved] == [i['sample_id'] for i in reference]
    assert all(i['img_path'].endswith('/1-1.dcm') for i in moved)
    assert [i['gt_label'] for i in moved] == [i['gt_label'] for i in reference]

    # A second file under one subject folder is ambiguous.
    extra = osp.join(osp.dirname(moved[0]['img_path']), '1-2.dcm')
    shutil.copy(moved[0]['img_path'], extra)
    with pytest.raises(ValueError, match='2 DICOM files under .*Mass-Training_P_00001_LEFT_CC'):
        CBISDDSMDataset(**layout.dataset_cfg)
    os.remove(extra)
    os.remove(moved[1]['img_path'])
    # (The line is where the CSV record ends: its ROI path spans two lines.)
    with pytest.raises(FileNotFoundError, match=r'mass_case_description_train_set\.csv" line 7: '
                                                r'no DICOM file .*Mass-Training_P_00001_LEFT_MLO'):
        CBISDDSMDataset(**layout.dataset_cfg)


def test_converted_pngs_hold_the_dicom_pixels(layout):
    dicom = CBISDDSMDataset(**layout.dataset_cfg, pipeline=[dict(type='LoadDicom')])
    with pytest.raises(FileNotFoundError, match='cbis_ddsm_to_png.py'):
        CBISDDSMDataset(**layout.dataset_cfg, img_format='png')
    assert convert_cbis_ddsm_to_png(layout.root) == 5
    png = CBISDDSMDataset(**layout.dataset_cfg, img_format='png',
                          pipeline=[dict(type='LoadImageStrict')])
    assert [i['img_path'] for i in _infos(png)] == [
        osp.join(layout.root, 'CBIS-DDSM-png', i['sample_id'] + '.png') for i in _infos(dicom)]
    for idx in range(len(dicom)):
        np.testing.assert_array_equal(png[idx]['img'], dicom[idx]['img'])
        assert png[idx]['gt_label'] == dicom[idx]['gt_label']

    # Shrunk: the DICOM pixels, resized by area to the longer side asked for.
    out = osp.join(layout.root, 'small')
    convert_cbis_ddsm_to_png(layout.root, out_dir=out, max_side=20)
    for idx in range(len(dicom)):
        expected = cv2.resize(dicom[idx]['img'][:, :, 0], (16, 20), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(
            cv2.imread(osp.join(out, dicom[idx]['sample_id'] + '.png'), cv2.IMREAD_UNCHANGED),
            expected)


@pytest.mark.slow
def test_converter_command_line(layout, tmp_path):
    """The tool, with worker processes, writes what the in-process conversion writes."""
    convert_cbis_ddsm_to_png(layout.root)
    png = CBISDDSMDataset(**layout.dataset_cfg, img_format='png')
    out = tmp_path / 'out'
    result = subprocess.run(
        [sys.executable, 'tools/dataset_converters/cbis_ddsm_to_png.py', layout.root,
         '--out-dir', str(out), '--workers', '2'], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert 'Converted 5 mammograms' in result.stdout
    for info in _infos(png):
        name = osp.basename(info['img_path'])
        np.testing.assert_array_equal(cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED),
                                      cv2.imread(info['img_path'], cv2.IMREAD_UNCHANGED))


def _rewrite(path, edit):
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    write_csv(path, edit(rows))


# A row of these tables ends a line after it starts (a quoted path ends with a line break):
# row k ends on line 2k + 1, the line the errors name.
@pytest.mark.parametrize('table, edit, error, match', [
    (TABLES[0], lambda rows: rows[:1] + [[c.replace('mass', 'architectural distortion')
                                          if c == 'mass' else c for c in rows[1]]] + rows[2:],
     ValueError, r'train_set\.csv" line 3: "abnormality type" is .architectural distortion.; '
                 'expected mass'),
    (TABLES[2], lambda rows: rows[:1] + [[rows[1][0], *rows[1][1:3], 'ML', *rows[1][4:]]],
     ValueError, r'calc_case_description_train_set\.csv" line 3: "image view" is .ML.'),
    (TABLES[0], lambda rows: rows + [rows[2]],
     ValueError, r'line 9: repeats abnormality 2 of P_00001_LEFT_CC \(line 5\)'),
    (TABLES[1], lambda rows: rows[:1] + [rows[1][:11] + [rows[1][11].replace('LEFT', 'RIGHT')]
                                         + rows[1][12:]],
     ValueError, r'"image file path" is .*; expected Mass-Test_P_00003_LEFT_MLO/<study>'),
    (TABLES[3], lambda rows: [r[:5] + r[6:] for r in rows],
     ValueError, "lacks the columns \\['abnormality type'\\]"),
    (TABLES[3], lambda rows: rows[:1], ValueError, 'has a header but no rows'),
])
def test_bad_tables_are_named(layout, table, edit, error, match):
    _rewrite(osp.join(layout.root, table), edit)
    with pytest.raises(error, match=match) as info:
        CBISDDSMDataset(**layout.dataset_cfg)
    assert osp.join(layout.root, table) in str(info.value)


def test_missing_table_and_bad_arguments(layout):
    os.remove(osp.join(layout.root, TABLES[3]))
    with pytest.raises(FileNotFoundError, match='calc_case_description_test_set.csv'):
        CBISDDSMDataset(**layout.dataset_cfg)
    with pytest.raises(ValueError, match="img_format must be 'dicom' or 'png'"):
        CBISDDSMDataset(**layout.dataset_cfg, img_format='jpg')


def test_a_new_image_row_gets_its_own_label(layout):
    """Adding a calcification of an image with a mass does not change its label."""
    rng = np.random.RandomState(1)
    path = osp.join(layout.root, TABLES[2])
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    image_file = 'Calc-Training_P_00001_LEFT_CC/1.3.6.1.4.1.9590.100.1.2.1/1.3.6.1.4.1.9590.1/0.dcm'
    rows.append(cbis_ddsm_row(TABLES[2], 'P_00001', 'LEFT', 'CC', 1, image_file, rng))
    write_csv(path, rows)
    write_mammogram_dicom(osp.join(layout.root, 'CBIS-DDSM', image_file),
                          np.zeros((8, 8), np.uint16))
    labels = Counter(i['gt_label'] for i in _infos(CBISDDSMDataset(**layout.dataset_cfg)))
    assert labels == Counter({1: 3, 0: 2})


def test_check_dataset_reports_every_bad_dicom(layout, tmp_path):
    register_all_modules(init_default_scope=False)
    bad = layout.dicom_files[:2]
    with open(bad[0], 'r+b') as f:
        f.truncate(200)
    with open(bad[1], 'wb') as f:
        f.write(b'garbage')
    dataset = dict(type='CBISDDSMDataset', **layout.dataset_cfg,
                   pipeline=[dict(type='LoadDicom'), dict(type='mmpretrain.PackInputs')])
    cfg = Config(dict(default_scope='medtrans', train_dataloader=dict(dataset=dataset)))
    report = check_dataset(cfg, splits=('train', ))
    assert report.splits[0].num_checked == 5
    assert sorted(p.file for p in report.splits[0].problems) == sorted(bad)
    assert all('could not be read as a DICOM image' in p.message
               for p in report.splits[0].problems)
    assert not any('patient leakage check not applicable' in n for n in report.notes)
