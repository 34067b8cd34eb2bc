"""Summaries of fabricated study work dirs: medians, stds, counts, the paper's numbers, files."""
import csv
import json
import statistics

import cv2
import numpy as np
import pytest

from medtrans.analysis.paper import PAPER_RESULTS
from medtrans.analysis.study import RUN_RECORD
from medtrans.analysis.summary import collect_results, plot_figures, summarize, write_tables

# (table, row, column, metric) -> test metric per seed
RUNS = {
    ('Table 1', 'ImageNet DeiT-S', 'APTOS2019', 'kappa'): [0.90, 0.88, 0.91, 0.87, 0.95],
    ('Table 1', 'ImageNet ResNet50', 'APTOS2019', 'kappa'): [0.85, 0.86],
    ('Table 1', 'random DeiT-S', 'ISIC2019', 'recall'): [0.61],
    ('Table 3', 'ImageNet+DINO DeiT-S', 'ISIC2019', 'recall'): [0.64],
    ('Table 4', 'ResNet18', 'ISIC2019', 'recall'): [0.78, 0.79, 0.80],
    ('Table 4', 'DeiT-B', 'ISIC2019', 'recall'): [0.83, 0.85, 0.84],
    ('Table 4', 'DeiT-T', 'ISIC2019', 'recall'): [0.80, 0.81, 0.82],
}


def _write_run(folder, table, row, column, metric, seed, value, other_metrics=None):
    folder.mkdir(parents=True)
    (folder / RUN_RECORD).write_text(json.dumps(dict(
        table=table, row=row, column=column, seed=seed, metric=metric, config='x.py')))
    if value is not None:
        (folder / 'metrics').mkdir()
        metrics = dict(other_metrics or {}, **{metric: value})
        (folder / 'metrics' / 'test_latest.json').write_text(json.dumps(dict(metrics=metrics)))


@pytest.fixture
def study_root(tmp_path):
    root = tmp_path / 'study'
    for index, ((table, row, column, metric), values) in enumerate(RUNS.items()):
        for seed, value in enumerate(values):
            _write_run(root / f'cell{index}' / f'seed{seed}', table, row, column, metric, seed,
                       value, other_metrics=dict(accuracy=0.5))
    _write_run(root / 'unfinished' / 'seed0', 'Table 1', 'ImageNet DeiT-S', 'CheXpert', 'auc',
               0, None)
    return root


def test_cells_are_medians_and_sample_stds_with_the_papers_numbers(study_root, tmp_path):
    results, unfinished = collect_results([str(study_root)])
    assert unfinished == [str(study_root / 'unfinished' / 'seed0')]
    cells = summarize(results)
    assert [(c.table, c.row, c.column) for c in cells] == [k[:3] for k in RUNS]
    for cell, ((table, row, column, metric), values) in zip(cells, RUNS.items()):
        assert cell.metric == metric
        assert cell.count == len(values)
        assert cell.median == statistics.median(values)
        assert cell.std == pytest.approx(statistics.stdev(values) if len(values) > 1 else 0.0,
                                         abs=1e-12)
        assert cell.paper == PAPER_RESULTS.get((table, row, column))
    deit = cells[0]
    assert deit.paper == 0.896 and deit.difference == pytest.approx(0.90 - 0.896)
    assert cells[2].paper == 0.579  # random DeiT-S, ISIC 2019

    out = tmp_path / 'summary'
    written = write_tables(cells, str(out))
    assert sorted(p.split('/')[-1] for p in written) == [
        'table_1.csv', 'table_1.md', 'table_3.csv', 'table_3.md', 'table_4.csv', 'table_4.md']
    markdown = (out / 'table_1.md').read_text()
    assert '| | APTOS2019 | ISIC2019 |' in markdown
    assert '| ImageNet DeiT-S | 0.900 +- 0.031 (5) \\| 0.896 \\| +0.004 |  |' in markdown
    assert '| random DeiT-S |  | 0.610 +- 0.000 (1) \\| 0.579 \\| +0.031 |' in markdown
    rows = list(csv.DictReader(open(out / 'table_4.csv')))
    assert [(r['row'], r['runs'], r['median'], r['paper']) for r in rows] == [
        ('ResNet18', '3', '0.790', '0.785'), ('DeiT-B', '3', '0.840', '0.840'),
        ('DeiT-T', '3', '0.810', '0.810')]

    figures = plot_figures(cells, str(out))
    assert [p.split('/')[-1] for p in figures] == ['figure1_initialisation.png',
                                                   'figure3_capacity.png']
    for path in figures:
        image = cv2.imread(path)
        assert image is not None and image.shape[0] > 100 and np.std(image) > 10


def test_a_metric_missing_from_the_test_metrics_is_named(tmp_path):
    _write_run(tmp_path / 'run', 'Table 1', 'ImageNet DeiT-S', 'APTOS2019', 'kappa', 0, None)
    (tmp_path / 'run' / 'metrics').mkdir()
    (tmp_path / 'run' / 'metrics' / 'test_latest.json').write_text(
        json.dumps(dict(metrics=dict(accuracy=0.7))))
    with pytest.raises(ValueError, match='no number for the metric "kappa".*accuracy'):
        collect_results([str(tmp_path)])


def test_two_runs_of_a_cell_with_one_seed_are_refused(tmp_path):
    for name in ('a', 'b'):
        _write_run(tmp_path / name, 'Table 2', 'DeepLabV3 DeiT-S', 'ISIC2018', 'IoU', 0, 0.8)
    with pytest.raises(ValueError, match='two runs with seed 0'):
        summarize(collect_results([str(tmp_path)])[0])


APTOS = 'configs/classification/deit-s/deit-s_in1k_1xb64_plateau_aptos2019-224.py'


def _predictions(path, labels, probs):
    lines = ['sample_id,gt_label,pred_label,' + ','.join(f'prob_{c}' for c in range(5))]
    for i, (label, prob) in enumerate(zip(labels, probs)):
        lines.append(f'img{i},{label},{int(prob.argmax())},' + ','.join(repr(p) for p in prob))
    path.write_text('\n'.join(lines) + '\n')


def test_bootstrap_interval_is_the_percentiles_of_the_resampled_median(tmp_path, repo_root):
    from sklearn.metrics import cohen_kappa_score

    from medtrans.analysis.bootstrap import bootstrap_interval

    rng = np.random.RandomState(0)
    labels = rng.randint(0, 5, 40)
    runs, preds = [], []
    for seed in range(3):
        probs = rng.dirichlet(np.ones(5), 40)
        probs[np.arange(40), labels] += rng.uniform(0, 0.6, 40)  # better than chance
        probs /= probs.sum(axis=1, keepdims=True)
        folder = tmp_path / f'seed{seed}'
        _write_run(folder, 'Table 1', 'ImageNet DeiT-S', 'APTOS2019', 'kappa', seed,
                   cohen_kappa_score(labels, probs.argmax(1), weights='quadratic'))
        record = json.loads((folder / RUN_RECORD).read_text())
        (folder / RUN_RECORD).write_text(json.dumps(dict(record, config=str(repo_root / APTOS))))
        _predictions(folder / 'predictions.csv', labels, probs)
        runs.append((str(repo_root / APTOS), 'kappa', str(folder / 'predictions.csv')))
        preds.append(probs.argmax(1))

    draws = np.random.default_rng(5)
    medians = []
    for _ in range(200):
        index = draws.integers(0, 40, size=40)
        medians.append(np.median([cohen_kappa_score(labels[index], p[index], weights='quadratic')
                                  for p in preds]))
    expected = np.percentile(medians, [2.5, 97.5])
    low, high = bootstrap_interval(runs, num_samples=200, seed=5)
    assert (low, high) == pytest.approx(tuple(expected), abs=1e-12)

    cells = summarize(collect_results([str(tmp_path)])[0], bootstrap=200, seed=5)
    assert cells[0].interval == pytest.approx((low, high), abs=1e-12)
    write_tables(cells, str(tmp_path / 'out'))
    assert f'(3) [{low:.3f}, {high:.3f}]' in (tmp_path / 'out' / 'table_1.md').read_text()

    (tmp_path / 'seed2' / 'predictions.csv').write_text(
        (tmp_path / 'seed2' / 'predictions.csv').read_text().replace('img3,', 'imgX,'))
    with pytest.raises(ValueError, match='holds other images'):
        bootstrap_interval(runs, num_samples=2)


def test_segmentation_bootstrap_pools_the_resampled_pixel_counts(tmp_path, repo_root):
    from medtrans.analysis.bootstrap import bootstrap_interval

    config = str(repo_root / 'configs/deeplab3_deit_s_isic2018.py')
    rng = np.random.RandomState(1)
    runs, counts = [], []
    for seed in range(2):
        table = rng.randint(0, 1000, size=(30, 3))
        path = tmp_path / f'counts{seed}.csv'
        path.write_text('sample_id,tp,fp,fn\n' + ''.join(
            f'ISIC_{i:07d}.jpg,{tp},{fp},{fn}\n' for i, (tp, fp, fn) in enumerate(table)))
        runs.append((config, 'IoU', str(path)))
        counts.append(table)
    draws = np.random.default_rng(3)
    medians = []
    for _ in range(100):
        index = draws.integers(0, 30, size=30)
        medians.append(np.median([t[index, 0].sum() / t[index].sum() for t in counts]))
    expected = tuple(np.percentile(medians, [2.5, 97.5]))
    assert bootstrap_interval(runs, num_samples=100, seed=3) == pytest.approx(expected,
                                                                              abs=1e-12)
