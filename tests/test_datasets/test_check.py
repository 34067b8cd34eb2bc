import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from medtrans.datasets import ISIC2018Task1Dataset
from medtrans.datasets.check import check_dataset, loading_steps
from medtrans.datasets.utils import DataProblems
from medtrans.testing import make_synthetic_isic2018

TRAIN_IN = 'ISIC2018_Task1-2_Training_Input'
TRAIN_GT = 'ISIC2018_Task1_Training_GroundTruth'
TEST_IN = 'ISIC2018_Task1-2_Test_Input'
TEST_GT = 'ISIC2018_Task1_Test_GroundTruth'
PIPELINE = [dict(type='LoadImageStrict'), dict(type='LoadBinaryMask'),
            dict(type='mmseg.PackSegInputs')]
DEMO_CONFIG = 'configs/demo/deeplab3_deit_s_demo_isic2018.py'


@pytest.fixture(scope='module')
def clean_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('check') / 'clean'
    make_synthetic_isic2018(str(root), num_train=20, num_val=0, num_test=3, size=(32, 32))
    return root


def _config(root, dataset_type='ISIC2018Task1Dataset', test_root=None):
    def loader(split, data_root):
        return dict(dataset=dict(type=dataset_type, data_root=str(data_root), split=split,
                                 pipeline=PIPELINE))
    return Config(dict(
        default_scope='medtrans',
        train_dataloader=loader('train', root), val_dataloader=loader('val', root),
        test_dataloader=loader('official_test', test_root or root)))


def _paths(dataset):
    return [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]


def _split_of(root, sample_id):
    """Which of train/val the seeded split puts an official training id in."""
    val = ISIC2018Task1Dataset(data_root=str(root), split='val')
    return 'val' if any(sample_id in d['img_path'] for d in val.load_data_list()) else 'train'


@pytest.fixture(scope='module')
def planted_root(clean_root, tmp_path_factory):
    """The clean set with five planted problems; returns (root, {what: file})."""
    root = tmp_path_factory.mktemp('check') / 'planted'
    shutil.copytree(clean_root, root)
    files = dict(
        unreadable=root / TRAIN_IN / 'ISIC_0000003.jpg',
        bad_values=root / TRAIN_GT / 'ISIC_0000004_segmentation.png',
        wrong_size=root / TRAIN_GT / 'ISIC_0000005_segmentation.png',
        duplicate=root / TEST_IN / 'ISIC_0000021.jpg',
        same_id=root / TEST_IN / 'ISIC_0000007.jpg')
    files['unreadable'].write_bytes(np.random.RandomState(0).bytes(500))
    mask = cv2.imread(str(files['bad_values']), cv2.IMREAD_GRAYSCALE)
    mask[:4, :4] = 128
    cv2.imwrite(str(files['bad_values']), mask)
    mask = cv2.imread(str(files['wrong_size']), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(files['wrong_size']), cv2.resize(mask, (32, 40),
                                                     interpolation=cv2.INTER_NEAREST))
    # A training image copied into the official test set, under the test set's own id.
    shutil.copy(root / TRAIN_IN / 'ISIC_0000006.jpg', files['duplicate'])
    # A test image (other content) under an id of the training set.
    os.rename(root / TEST_IN / 'ISIC_0000022.jpg', files['same_id'])
    os.rename(root / TEST_GT / 'ISIC_0000022_segmentation.png',
              root / TEST_GT / 'ISIC_0000007_segmentation.png')
    return root, {what: str(path) for what, path in files.items()}


def test_a_clean_set_passes_and_every_sample_is_checked(clean_root, tmp_path):
    lines = []
    report = check_dataset(_config(clean_root), progress_every=5, log=lines.append,
                           work_dir=str(tmp_path))
    assert report.ok, report.format()
    assert [(s.name, s.num_samples, s.num_checked) for s in report.splits] == [
        ('train', 18, 18), ('val', 2, 2), ('test', 3, 3)]
    assert report.notes == ["patient leakage check not applicable: no data info carries "
                            "'patient_id' or 'lesion_id' or 'group'"]
    assert report.format().splitlines()[-1] == (
        'Summary: 3 split(s), 23 samples checked, 0 problem(s): OK')
    # The split record lands in the work dir, as in training (the official test split has
    # none); the data folder is untouched.
    record = tmp_path / 'splits' / 'isic2018_task1_seed0.json'
    assert lines[:5] == [f'[train] wrote the split record {record}',
                         f'[val] the split matches its record {record}',
                         '[train] 5/18 samples checked, 0 problem(s) so far',
                         '[train] 10/18 samples checked, 0 problem(s) so far',
                         '[train] 15/18 samples checked, 0 problem(s) so far']
    assert json.loads(record.read_text())['splits']['val'] == [
        osp.basename(p)[:-4] for p in _paths(ISIC2018Task1Dataset(str(clean_root), split='val'))]
    assert not (clean_root / 'splits').exists()


def test_a_split_record_that_does_not_fit_is_one_problem(clean_root, tmp_path):
    check_dataset(_config(clean_root), splits=('train', ), work_dir=str(tmp_path))
    record_path = tmp_path / 'splits' / 'isic2018_task1_seed0.json'
    record = json.loads(record_path.read_text())
    moved = record['splits']['train'].pop(0)
    record['splits']['val'].append(moved)
    record_path.write_text(json.dumps(record))
    report = check_dataset(_config(clean_root), work_dir=str(tmp_path))
    # Said once, in the first split of the division; every sample is checked all the same.
    assert report.num_problems == 1, report.format()
    [problem] = report.splits[0].problems
    assert problem.message.startswith(f'split record "{record_path}" assigns 1 ids to other '
                                      f'splits than this run does (e.g. "{moved}" is in "val" '
                                      'there but in "train" here)')
    assert all(s.num_checked == s.num_samples for s in report.splits)


def test_every_planted_problem_is_reported_at_once(planted_root, tmp_path):
    root, files = planted_root
    report = check_dataset(_config(root))
    by_split = {s.name: s for s in report.splits}
    assert all(s.num_checked == s.num_samples for s in report.splits)
    assert report.num_problems == 5 and not report.ok, report.format()

    for what, needle in (('unreadable', 'could not be decoded'),
                         ('bad_values', 'holds values [0, 128, 255]'),
                         ('wrong_size', 'is 40x32 (HxW) but its image')):
        sample_id = osp.basename(files[what])[:len('ISIC_0000000')]
        [problem] = [p for p in by_split[_split_of(root, sample_id)].problems
                     if p.file == files[what]]
        assert needle in problem.message

    duplicate, same_id = sorted(report.cross_split, key=lambda p: 'sample id' in p.message)
    train_copy = str(root / TRAIN_IN / 'ISIC_0000006.jpg')
    assert 'identical image content' in duplicate.message
    assert f'{_split_of(root, "ISIC_0000006")}: {train_copy}' in duplicate.message
    assert f'test: {files["duplicate"]}' in duplicate.message
    assert 'sample id "ISIC_0000007" in more than one split' in same_id.message
    assert f'test: {files["same_id"]}' in same_id.message

    text = report.format()
    assert all(path in text for path in files.values())
    assert text.endswith('23 samples checked, 5 problem(s): FAILED')


def test_threads_give_the_same_report(planted_root, tmp_path):
    root, _ = planted_root
    assert (check_dataset(_config(root), num_workers=2).format()
            == check_dataset(_config(root), num_workers=0).format())


def test_every_unpaired_file_is_reported_and_the_rest_checked(clean_root, tmp_path):
    # A mask missing, an image missing, a misnamed mask; and a test split that cannot be built.
    root = tmp_path / 'data'
    shutil.copytree(clean_root, root)
    os.remove(root / TRAIN_GT / 'ISIC_0000002_segmentation.png')
    os.remove(root / TRAIN_IN / 'ISIC_0000005.jpg')
    shutil.copy(root / TRAIN_GT / 'ISIC_0000001_segmentation.png',
                root / TRAIN_GT / 'ISIC_0000001_mask.png')
    report = check_dataset(_config(root, test_root=tmp_path / 'nowhere'),
                           work_dir=str(tmp_path / 'work'))
    assert report.num_problems == 4
    train, val, test = report.splits
    # 18 of the 20 images are paired: both training splits check them all.
    assert (train.num_checked, val.num_checked, test.num_checked) == (16, 2, 0)
    gt, images = root / TRAIN_GT, root / TRAIN_IN
    assert [problem.message for problem in train.problems] == [
        f'ISIC2018Task1Dataset: "{gt / "ISIC_0000001_mask.png"}" is not named '
        f'<id>_segmentation.png; expected only masks in {gt}',
        f'ISIC2018Task1Dataset: image "{images / "ISIC_0000002.jpg"}" has no mask; expected '
        f'"{gt / "ISIC_0000002_segmentation.png"}"',
        f'ISIC2018Task1Dataset: mask "{gt / "ISIC_0000005_segmentation.png"}" has no image; '
        f'expected "{images / "ISIC_0000005.jpg"}"']
    assert val.problems == [] and val.shared == {'train': 3}
    [problem] = test.problems
    assert problem.message.startswith(
        f"ISIC2018Task1Dataset(data_root='{tmp_path / 'nowhere'}', split='official_test') "
        f'could not be built: FileNotFoundError: ISIC2018Task1Dataset: data_root '
        f'"{tmp_path / "nowhere"}" not found')
    # The same data refused by training, every problem at once.
    with pytest.raises(DataProblems) as err:
        ISIC2018Task1Dataset(data_root=str(root), split='train')
    assert str(err.value).startswith(f'3 problems in the ISIC 2018 folders "{images}" and '
                                     f'"{gt}"; expected none')
    assert all(problem.message in str(err.value) for problem in train.problems)


class _PatientISIC(ISIC2018Task1Dataset):
    """ISIC with a patient id per image: two consecutive ids belong to one patient."""

    def load_data_list(self):
        infos = super().load_data_list()
        for info in infos:
            info['patient_id'] = int(osp.basename(info['img_path'])[5:12]) // 2
        return infos


def test_patients_in_two_splits_are_reported(clean_root, tmp_path):
    report = check_dataset(_config(clean_root, dataset_type=_PatientISIC),
                           splits=('train', 'val'))
    val_ids = sorted(int(osp.basename(d['img_path'])[5:12]) for d in ISIC2018Task1Dataset(
        data_root=str(clean_root), split='val').load_data_list())
    leaked = sorted({i // 2 for i in val_ids})
    assert [p.message.split(':')[0] for p in report.cross_split] == [
        f'patient/group "{patient}" is in splits [\'train\', \'val\']' for patient in leaked]
    assert not report.notes and report.num_problems == len(leaked)


def test_only_loading_steps_run():
    test_pipeline = Config.fromfile(DEMO_CONFIG).test_pipeline
    assert [s['type'] for s in loading_steps(test_pipeline)] == ['LoadImageStrict',
                                                                'LoadBinaryMask']
    steps = [dict(type='mmseg.LoadAnnotations'), dict(type='RandomFlip', prob=0.5),
             dict(type='LoadImageFromFile')]
    assert loading_steps(steps) == [steps[0], steps[2]]


def _cli(root, work_dir, repo_root, *extra, overrides=()):
    overrides = [f'{split}_dataloader.dataset.data_root={root}'
                 for split in ('train', 'val', 'test')] + list(overrides)
    return subprocess.run(
        [sys.executable, 'tools/check_dataset.py', DEMO_CONFIG, '--cfg-options', *overrides,
         '--work-dir', str(work_dir), *extra],
        cwd=repo_root, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, HF_HUB_OFFLINE='1'))


def test_cli_exit_status_and_report(clean_root, planted_root, tmp_path, repo_root):
    clean = _cli(clean_root, tmp_path / 'clean', repo_root)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    # The demo config tests on its val split: one scan serves both.
    assert '[test] ISIC2018Task1Dataset(' in clean.stdout
    assert 'same samples and loading steps as [val]' in clean.stdout
    assert clean.stdout.rstrip().endswith('20 samples checked, 0 problem(s): OK')
    assert '[train] done: 18 samples checked, 0 problem(s)' in clean.stderr
    record = tmp_path / 'clean' / 'splits' / 'isic2018_task1_seed0.json'
    # The report says where the split record went (the work dir, not the data folder).
    assert record.is_file() and f'Split record: wrote {record}' in clean.stdout.splitlines()

    root, files = planted_root
    planted = _cli(root, tmp_path / 'planted', repo_root, '--workers', '2',
                   overrides=['test_dataloader.dataset.split=official_test'])
    assert planted.returncode == 1, planted.stdout + planted.stderr
    assert planted.stdout.rstrip().endswith('23 samples checked, 5 problem(s): FAILED')
    for what in ('unreadable', 'bad_values', 'wrong_size'):
        assert f'  - {files[what]}: ValueError: ' in planted.stdout
    for what in ('duplicate', 'same_id'):
        assert f'test: {files[what]}' in planted.stdout
    assert 'Traceback' not in planted.stderr
