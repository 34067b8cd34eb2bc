import filecmp
import json
import os
import runpy
import subprocess
import sys

import cv2
import numpy as np
import pytest

from medtrans.datasets import ISIC2018Task1Dataset, LoadBinaryMask, LoadImageStrict
from medtrans.testing import (
    MANIFEST_NAME,
    is_complete_synthetic_isic2018,
    make_synthetic_isic2018,
)

PARAMS = dict(num_train=12, num_val=4, num_test=2, size=(48, 64), seed=5)


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic') / 'demo'
    manifest = make_synthetic_isic2018(str(root), **PARAMS)
    return root, manifest


def test_layout_is_read_by_the_dataset(generated):
    root, manifest = generated
    assert manifest['params'] == dict(PARAMS, size=[48, 64])
    lengths = {}
    for split in ('train', 'val', 'trainval', 'official_val', 'official_test'):
        dataset = ISIC2018Task1Dataset(data_root=str(root), split=split,
                                       pipeline=[LoadImageStrict(), LoadBinaryMask()])
        lengths[split] = len(dataset)
        for idx in range(len(dataset)):
            sample = dataset[idx]
            assert sample['img'].shape == (48, 64, 3)
            raw = cv2.imread(sample['seg_map_path'], cv2.IMREAD_UNCHANGED)
            assert raw.dtype == np.uint8 and set(np.unique(raw)) == {0, 255}
            assert set(np.unique(sample['gt_seg_map'])) == {0, 1}
    assert lengths == dict(train=11, val=1, trainval=12, official_val=4, official_test=2)
    # Like the real release, the input folders hold an ATTRIBUTION.txt the dataset ignores.
    assert (root / 'ISIC2018_Task1-2_Training_Input' / 'ATTRIBUTION.txt').is_file()


def test_lesions_are_dark_varied_and_sized_for_learning(generated):
    root, _ = generated
    dataset = ISIC2018Task1Dataset(data_root=str(root), split='trainval',
                                   pipeline=[LoadImageStrict(), LoadBinaryMask()])
    centres, areas = [], []
    for idx in range(len(dataset)):
        sample = dataset[idx]
        grey = cv2.cvtColor(sample['img'], cv2.COLOR_BGR2GRAY).astype(float)
        lesion = sample['gt_seg_map'].astype(bool)
        areas.append(lesion.mean())
        centres.append(np.argwhere(lesion).mean(0))
        # Strong contrast: the lesion is far darker than the skin around it.
        assert grey[lesion].mean() < 0.6 * grey[~lesion].mean()
    assert 0.05 < min(areas) and max(areas) < 0.6
    assert np.ptp(areas) > 0.05 and np.ptp(np.array(centres), axis=0).min() > 5


def test_same_seed_same_files_other_seed_other_files(generated, tmp_path):
    root, manifest = generated
    again = tmp_path / 'again'
    assert make_synthetic_isic2018(str(again), **PARAMS) == manifest
    for rel in manifest['files']:
        assert filecmp.cmp(root / rel, again / rel, shallow=False), rel
    other = tmp_path / 'other'
    make_synthetic_isic2018(str(other), **dict(PARAMS, seed=6))
    rel = 'ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png'
    assert not filecmp.cmp(root / rel, other / rel, shallow=False)


def test_completeness_check_and_regeneration(tmp_path):
    root = tmp_path / 'demo'
    params = dict(num_train=3, num_val=1, num_test=0, size=(32, 32), seed=0)
    assert not is_complete_synthetic_isic2018(str(root), **params)
    make_synthetic_isic2018(str(root), **params)
    assert is_complete_synthetic_isic2018(str(root), **params)
    assert not is_complete_synthetic_isic2018(str(root), **dict(params, seed=1))
    assert not (root / 'ISIC2018_Task1-2_Test_Input').exists()
    assert [p for p in os.listdir(tmp_path) if '.tmp-' in p] == []

    os.remove(root / 'ISIC2018_Task1-2_Validation_Input' / 'ISIC_0000003.jpg')
    assert not is_complete_synthetic_isic2018(str(root), **params)

    # Other parameters replace the earlier set entirely (no stale images are left).
    make_synthetic_isic2018(str(root), **dict(params, num_train=2, num_val=0))
    assert sorted(os.listdir(root)) == sorted([
        MANIFEST_NAME, 'ISIC2018_Task1-2_Training_Input', 'ISIC2018_Task1_Training_GroundTruth'])
    assert len(os.listdir(root / 'ISIC2018_Task1_Training_GroundTruth')) == 2


def test_refuses_to_write_over_foreign_files(tmp_path):
    (tmp_path / 'notes.txt').write_text('mine\n')
    with pytest.raises(FileExistsError, match='is not empty and holds no '
                       'medtrans_synthetic_manifest.json'):
        make_synthetic_isic2018(str(tmp_path), num_train=2, size=(32, 32))
    assert os.listdir(tmp_path) == ['notes.txt']
    with pytest.raises(ValueError, match='num_train > 0'):
        make_synthetic_isic2018(str(tmp_path / 'x'), num_train=0)
    with pytest.raises(ValueError, match='at least 32x32'):
        make_synthetic_isic2018(str(tmp_path / 'x'), num_train=2, size=(16, 16))


def test_cli_generates_once_then_reports_the_set_is_there(tmp_path, repo_root, monkeypatch,
                                                          capsys):
    out = tmp_path / 'demo_isic2018'
    script = repo_root / 'tools' / 'misc' / 'make_demo_data.py'
    args = [str(out), '--num-train', '4', '--num-val', '2', '--size', '40', '--seed', '3']
    monkeypatch.setattr(sys, 'argv', [str(script)] + args)
    runpy.run_path(str(script), run_name='__main__')
    assert 'Wrote 14 files' in capsys.readouterr().out
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest['params'] == dict(num_train=4, num_val=2, num_test=0, size=[40, 40], seed=3)
    # As `make demo` runs it: a second run finds the set and exits 0.
    second = subprocess.run([sys.executable, str(script)] + args, capture_output=True,
                            text=True, check=True)
    assert 'already holds' in second.stdout and 'nothing to do' in second.stdout
