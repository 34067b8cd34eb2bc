"""CSAW-S in its published layout: samples, splits grouped by patient, annotators, errors."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from medtrans.datasets import CSAWSDataset, LoadBinaryMask, LoadImageStrict, split_ids
from medtrans.datasets.utils import DataProblems, collect_problems
from medtrans.testing.layouts.csaw_s import write_synthetic_csaw_s


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / 'CsawS'
    files = write_synthetic_csaw_s(str(root), train_patients=10, test_patients=2)
    return root, files


def _load(dataset, index):
    results = LoadBinaryMask()(LoadImageStrict()(dataset.get_data_info(index)))
    return results['img'], results['gt_seg_map']


def test_trainval_pairs_each_screening_with_its_cancer_annotation(tree):
    root, files = tree
    dataset = CSAWSDataset(str(root), split='trainval')
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    # Every screening once, twins and other classes' annotations not read.
    assert [info['img_path'] for info in infos] == files['train_images']
    assert [info['seg_map_path'] for info in infos] == files['train_masks']
    assert [info['patient_id'] for info in infos] == [f'{i:03d}' for i in range(10)
                                                      for _ in range(2)]
    for index, info in enumerate(infos):
        img, gt = _load(dataset, index)
        stored = cv2.imread(info['seg_map_path'], cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(gt, (stored == 255).astype(np.uint8))
        assert img.shape == (32, 32, 3)
    # The RGB screening is read as stored, not from its grey twin.
    rgb = infos[1]['img_path']
    assert rgb.endswith('000_1.png') and osp.isfile(rgb[:-4] + '_8bit.png')
    np.testing.assert_array_equal(_load(dataset, 1)[0], cv2.imread(rgb, cv2.IMREAD_COLOR))


def test_train_val_split_by_patient_is_split_ids_grouped(tree, tmp_path):
    root, _ = tree
    split_file = str(tmp_path / 'splits' / 'csaw.json')
    train = CSAWSDataset(str(root), split='train', split_seed=3, split_file=split_file)
    val = CSAWSDataset(str(root), split='val', split_seed=3, split_file=split_file)
    stems = [f'{p:03d}_{n}' for p in range(10) for n in range(2)]
    expected = split_ids(stems, {'train': 0.9, 'val': 0.1}, 3, groups=[s[:3] for s in stems])
    for dataset, name in ((train, 'train'), (val, 'val')):
        got = [osp.basename(dataset.get_data_info(i)['img_path'])[:-4]
               for i in range(len(dataset))]
        assert got == expected[name]
    train_patients = {train.get_data_info(i)['patient_id'] for i in range(len(train))}
    val_patients = {val.get_data_info(i)['patient_id'] for i in range(len(val))}
    assert val_patients and not train_patients & val_patients
    assert json.load(open(split_file))['splits'] == expected


@pytest.mark.parametrize('annotator', [1, 2, 3])
def test_test_split_is_scored_against_the_chosen_annotator(tree, annotator):
    root, files = tree
    dataset = CSAWSDataset(str(root), split='test', annotator=annotator)
    assert [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))] == \
        files['test_images']
    assert [dataset.get_data_info(i)['seg_map_path'] for i in range(len(dataset))] == \
        files[f'test_masks_{annotator}']


def test_other_annotators_only_for_the_test_split(tree):
    root, _ = tree
    with pytest.raises(ValueError, match="annotator=2 with split 'train'.*annotator 1"):
        CSAWSDataset(str(root), split='train', annotator=2)
    with pytest.raises(ValueError, match=r'annotator must be one of \[1, 2, 3\], got 4'):
        CSAWSDataset(str(root), split='test', annotator=4)


def test_a_screening_without_its_cancer_annotation_is_an_error(tree):
    root, files = tree
    os.remove(files['train_masks'][3])
    with pytest.raises(FileNotFoundError) as info:
        CSAWSDataset(str(root), split='trainval')
    assert files['train_images'][3] in str(info.value)
    assert files['train_masks'][3] in str(info.value)


def test_an_annotation_without_its_screening_is_an_error(tree):
    root, files = tree
    os.remove(files['train_images'][2])
    with pytest.raises(FileNotFoundError) as info:
        CSAWSDataset(str(root), split='trainval')
    assert files['train_masks'][2] in str(info.value)
    assert files['train_images'][2] in str(info.value)


def test_a_test_patient_without_annotations_is_an_error(tree):
    root, _ = tree
    for name in os.listdir(root / 'test_data' / 'annotator_2' / '011'):
        os.remove(root / 'test_data' / 'annotator_2' / '011' / name)
    os.rmdir(root / 'test_data' / 'annotator_2' / '011')
    CSAWSDataset(str(root), split='test', annotator=1)
    with pytest.raises(FileNotFoundError, match='patient "011".*annotator_2'):
        CSAWSDataset(str(root), split='test', annotator=2)


def test_a_png_not_named_after_its_patient_is_an_error(tree):
    root, files = tree
    stray = root / 'anonymized_dataset' / '004' / '005_0.png'
    os.link(files['train_images'][0], stray)
    with pytest.raises(ValueError, match=f'"{stray}" is not named'):
        CSAWSDataset(str(root), split='trainval')


def test_missing_data_root_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match='zenodo.org/record/4030660'):
        CSAWSDataset(str(tmp_path / 'nowhere'), split='trainval')


def test_an_annotated_test_patient_without_screenings_is_an_error(tree):
    root, files = tree
    extra = root / 'test_data' / 'annotator_3' / '099'
    extra.mkdir()
    os.link(files['test_masks_3'][0], extra / '099_0_cancer.png')
    CSAWSDataset(str(root), split='test', annotator=1)
    with pytest.raises(FileNotFoundError, match=f'"{extra}" annotates a patient with no folder'):
        CSAWSDataset(str(root), split='test', annotator=3)


def test_every_problem_is_refused_at_once_or_collected_by_the_checks(tree):
    root, files = tree
    os.remove(files['train_masks'][3])
    os.remove(files['train_images'][2])
    stray = root / 'anonymized_dataset' / '004' / '005_0.png'
    os.link(files['train_images'][0], stray)
    with pytest.raises(DataProblems) as info:
        CSAWSDataset(str(root), split='trainval')
    message = str(info.value)
    assert message.startswith(f'3 problems in the CSAW-S folder "{root / "anonymized_dataset"}"; '
                              'expected none')
    for path in (files['train_masks'][3], files['train_masks'][2], stray):
        assert f'"{path}"' in message
    # What tools/check_dataset.py does: the problems collected, the other screenings read.
    with collect_problems() as found:
        dataset = CSAWSDataset(str(root), split='trainval')
    assert [str(problem) for problem in found] == [
        line[len('  - '):] for line in message.splitlines()[1:]]
    paths = {dataset.get_data_info(i)['img_path'] for i in range(len(dataset))}
    assert paths == set(files['train_images']) - {files['train_images'][2],
                                                  files['train_images'][3]}
    # Nothing paired: the checks say so, not that the folder holds no screenings.
    for mask in files['train_masks']:
        if os.path.exists(mask):
            os.remove(mask)
    folder = root / 'anonymized_dataset'
    with collect_problems(), pytest.raises(ValueError) as info:
        CSAWSDataset(str(root), split='trainval')
    assert str(info.value) == (f'CSAWSDataset (split "trainval"): no screening of "{folder}" '
                               f'has its cancer annotation in "{folder}".')
