"""Grouped (cluster) bootstrap: the unit resampled is the one the dataset's split groups by."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config

from medtrans.analysis.bootstrap import (
    bootstrap_interval,
    dataset_groups,
    read_records,
    run_metric,
)
from medtrans.analysis.study import RUN_RECORD
from medtrans.analysis.summary import collect_results, summarize, write_tables
from medtrans.testing import (
    aptos2019_layout,
    chexpert_layout,
    isic2019_layout,
    write_csv,
    write_images,
)
from medtrans.testing.layouts.csaw_s import write_synthetic_csaw_s

APTOS = 'configs/classification/deit-s/deit-s_in1k_1xb64_plateau_aptos2019-224.py'
ISIC2019 = 'configs/classification/deit-s/deit-s_in1k_1xb64_plateau_isic2019-224.py'


def _cluster_bootstrap(computes, results, groups, num_samples, seed):
    """A cluster bootstrap written out: the groups in order of their first image, as many
    drawn with replacement as there are, every image of a drawn group taken; the median of
    the runs' metrics per resample; its 2.5 and 97.5 percentiles."""
    order = list(dict.fromkeys(groups))
    members = [np.flatnonzero(np.asarray(groups) == group) for group in order]
    rng = np.random.default_rng(seed)
    medians = []
    for _ in range(num_samples):
        drawn = rng.integers(0, len(order), size=len(order))
        index = np.concatenate([members[g] for g in drawn])
        medians.append(np.median([float(compute([run[i] for i in index]))
                                  for compute, run in zip(computes, results)]))
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def _classification_csv(path, ids, labels, probs):
    lines = ['sample_id,gt_label,pred_label,' + ','.join(f'prob_{c}'
                                                         for c in range(probs.shape[1]))]
    for sample_id, label, prob in zip(ids, labels, probs):
        lines.append(f'{sample_id},{label},{int(prob.argmax())},' + ','.join(map(repr, prob)))
    path.write_text('\n'.join(lines) + '\n')


def _runs(tmp_path, config, ids, labels, num_classes, count, seed):
    """``count`` runs' per-image CSVs of noisy but better-than-chance probabilities."""
    rng = np.random.RandomState(seed)
    runs = []
    for run in range(count):
        probs = rng.dirichlet(np.ones(num_classes), len(ids))
        probs[np.arange(len(ids)), labels] += rng.uniform(0, 0.6, len(ids))
        probs /= probs.sum(axis=1, keepdims=True)
        path = tmp_path / f'predictions{run}.csv'
        _classification_csv(path, ids, labels, probs)
        runs.append((config, None, str(path)))
    return runs


def _computes(runs, metric):
    """Each run's metric on a subset of its records, as the interval computes it."""
    computes, results = [], []
    for config, _, path in runs:
        _, records, classes = read_records(path)
        computes.append(run_metric(config, metric, classes, records))
        results.append(records)
    return computes, results


def test_patients_are_resampled_with_all_their_images(tmp_path, repo_root):
    from sklearn.metrics import cohen_kappa_score

    config = str(repo_root / APTOS)
    rng = np.random.RandomState(0)
    # 36 images of 12 patients (1 to 5 images each), the patients' images not adjacent.
    patients = np.repeat(np.arange(12), [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 3, 3])
    patients = patients[rng.permutation(len(patients))]
    ids = [f'img{i:02d}' for i in range(len(patients))]
    labels = rng.randint(0, 5, len(ids))
    runs = [(config, 'kappa', path)
            for _, _, path in _runs(tmp_path, config, ids, labels, 5, count=3, seed=1)]
    groups = {sample_id: f'P{patient}' for sample_id, patient in zip(ids, patients)}

    computes, results = _computes(runs, 'kappa')
    expected = _cluster_bootstrap(computes, results, [groups[i] for i in ids], 150, seed=7)
    assert bootstrap_interval(runs, num_samples=150, seed=7, groups=groups) == expected
    # The metric recomputed is the run's quadratic kappa.
    assert computes[0](results[0]) == pytest.approx(cohen_kappa_score(
        labels, [int(np.argmax(scores)) for scores, _ in results[0]], weights='quadratic'),
        abs=1e-12)
    # Images without groups: each image its own unit, drawn in file order.
    images = bootstrap_interval(runs, num_samples=150, seed=7)
    assert images == _cluster_bootstrap(computes, results, ids, 150, seed=7)
    assert images == bootstrap_interval(runs, num_samples=150, seed=7,
                                        groups={i: i for i in ids})
    assert images != expected
    del groups['img05']
    with pytest.raises(ValueError, match='image "img05" is not in the test set whose groups'):
        bootstrap_interval(runs, num_samples=2, groups=groups)


def test_groups_are_the_datasets_own_keys(tmp_path):
    layout = isic2019_layout(str(tmp_path / 'isic2019'))
    groups, unit = dataset_groups(dict(type='ISIC2019Dataset', **layout.dataset_cfg))
    lesions = {'ISIC_0000000': 'HAM_0000118', 'ISIC_0000017_downsampled':
               'ISIC_0000017_downsampled', 'ISIC_0024306': 'HAM_0000118',
               'ISIC_0024307': 'HAM_0002730', 'ISIC_0053460': 'BCN_0003925'}
    images = osp.join(layout.root, 'ISIC_2019_Training_Input')
    assert unit == 'lesion'
    assert groups == {**lesions, **{osp.join(images, f'{image}.jpg'): lesion
                                    for image, lesion in lesions.items()}}

    layout = chexpert_layout(str(tmp_path / 'chexpert'))
    groups, unit = dataset_groups(dict(type='CheXpertDataset', **layout.dataset_cfg))
    paths = ['train/patient00001/study1/view1_frontal.jpg',
             'train/patient00001/study1/view2_lateral.jpg',
             'train/patient00001/study2/view1_frontal.jpg',
             'train/patient00002/study1/view1_frontal.jpg',
             'train/patient00003/study1/view1_frontal.jpg',
             'train/patient00003/study1/view2_lateral.jpg']
    assert unit == 'patient'
    assert groups == {key: path.split('/')[1] for path in paths
                      for key in (path, osp.join(layout.root, path))}

    # Segmentation: the per-image counts name images by path; CSAW-S's test patients.
    root = str(tmp_path / 'CsawS')
    files = write_synthetic_csaw_s(root, train_patients=2, test_patients=2)
    groups, unit = dataset_groups(dict(type='CSAWSDataset', data_root=root, split='test',
                                       test_mode=True))
    assert unit == 'patient'
    assert groups == {path: osp.basename(osp.dirname(path)) for path in files['test_images']}
    assert sorted(set(groups.values())) == ['002', '003']

    layout = aptos2019_layout(str(tmp_path / 'aptos'))
    assert dataset_groups(dict(type='APTOS2019Dataset', **layout.dataset_cfg)) == (None,
                                                                                   'image')


def _write_run(folder, column, seed, config, dumped, value=0.5):
    """A finished run of the study, with the copy of its config the Runner keeps."""
    folder.mkdir(parents=True)
    (folder / RUN_RECORD).write_text(json.dumps(dict(
        table='Table 1', row='ImageNet DeiT-S', column=column, seed=seed, metric='recall',
        config=config)))
    (folder / 'metrics').mkdir()
    (folder / 'metrics' / 'test_latest.json').write_text(json.dumps(dict(
        metrics=dict(recall=value))))
    dumped.dump(str(folder / osp.basename(config)))


def test_the_summary_resamples_isic2019_lesions(tmp_path, repo_root):
    # 30 images of 11 lesions, some images without a lesion id (each its own lesion).
    rng = np.random.RandomState(3)
    lesion_of = [f'HAM_{n:07d}' for n in np.repeat(np.arange(9), [4, 3, 3, 3, 3, 3, 3, 3, 3])]
    lesion_of += ['', '', '']
    ids = [f'ISIC_{i:07d}' for i in range(len(lesion_of))]
    labels = rng.randint(0, 3, len(ids))
    data = tmp_path / 'data'
    classes = ('MEL', 'NV', 'BCC', 'AK', 'BKL', 'DF', 'VASC', 'SCC', 'UNK')
    write_csv(str(data / 'ISIC_2019_Training_GroundTruth.csv'), [('image', ) + classes] + [
        (i, *('1' if c == label else '0' for c in range(9))) for i, label in zip(ids, labels)])
    write_csv(str(data / 'ISIC_2019_Training_Metadata.csv'), [('image', 'lesion_id')] +
              list(zip(ids, lesion_of)))
    write_images(str(data / 'ISIC_2019_Training_Input'), [f'{i}.jpg' for i in ids], seed=0,
                 size=8)
    config = str(repo_root / ISIC2019)
    # The runs read the data from data_root, tested on every image (the Runner's copy of
    # each run's config says so; the study's config names its default data root).
    dumped = Config.fromfile(config)
    dumped.test_dataloader.dataset.update(data_root=str(data), split='all')
    runs = _runs(tmp_path, config, ids, labels, 9, count=2, seed=4)
    for seed, (_, _, path) in enumerate(runs):
        folder = tmp_path / 'study' / f'seed{seed}'
        _write_run(folder, 'ISIC2019', seed, config, dumped)
        (folder / 'predictions.csv').write_text(open(path).read())

    cells = summarize(collect_results([str(tmp_path / 'study')])[0], bootstrap=120, seed=11)
    computes, results = _computes(runs, 'recall')
    lesions = [lesion or sample_id for sample_id, lesion in zip(ids, lesion_of)]
    expected = _cluster_bootstrap(computes, results, lesions, 120, seed=11)
    assert (cells[0].interval, cells[0].resampled) == (expected, 'lesion')
    assert expected != _cluster_bootstrap(computes, results, ids, 120, seed=11)

    write_tables(cells, str(tmp_path / 'out'))
    table = (tmp_path / 'out' / 'table_1.md').read_text()
    assert f'(2) [{expected[0]:.3f}, {expected[1]:.3f}]' in table
    assert table.endswith('\nMetric: recall.\nBootstrap intervals resample the test set by the '
                          'unit its split groups by: lesions (ISIC2019).\n')
    assert 'lesion' in (tmp_path / 'out' / 'table_1.csv').read_text().splitlines()[1].split(',')
