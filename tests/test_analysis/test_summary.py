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


def _write_run(folder, table, row, column, metric, seed, value, other_metrics=None,
               config='x.py'):
    folder.mkdir(parents=True)
    (folder / RUN_RECORD).write_text(json.dumps(dict(
        table=table, row=row, column=column, seed=seed, metric=metric, config=config)))
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
    assert (deit.paper_std, cells[2].paper, cells[2].paper_std) == (0.005, 0.579, 0.013)

    out = tmp_path / 'summary'
    written = write_tables(cells, str(out))
    assert sorted(p.split('/')[-1] for p in written) == [
        'table_1.csv', 'table_1.md', 'table_3.csv', 'table_3.md', 'table_4.csv', 'table_4.md']
    header = ('Each cell: median +- std over seeds (runs) [95% bootstrap interval of the median] '
              '| paper: median +- std | ours - paper (medians).')
    assert (out / 'table_1.md').read_text() == '\n'.join([
        '# Table 1', '', header, '',
        '| | APTOS2019 | ISIC2019 |',
        '|---|---|---|',
        '| ImageNet DeiT-S | 0.900 +- 0.031 (5) \\| 0.896 +- 0.005 \\| +0.004 |  |',
        '| ImageNet ResNet50 | 0.855 +- 0.007 (2) \\| 0.893 +- 0.004 \\| -0.038 |  |',
        '| random DeiT-S |  | 0.610 +- 0.000 (1) \\| 0.579 +- 0.013 \\| +0.031 |', '',
        'Metric: kappa, recall.', ''])
    # The paper's k-NN table says which temperature the authors used, even where ours is not
    # known (these runs' configs do not exist).
    assert (out / 'table_3.md').read_text() == '\n'.join([
        '# Table 3', '', header, '',
        '| | ISIC2019 |',
        '|---|---|',
        '| ImageNet+DINO DeiT-S | 0.640 +- 0.000 (1) \\| 0.637 +- 0.000 \\| +0.003 |', '',
        'Metric: recall.',
        "k-NN vote temperature T (weights exp(similarity / T)): ours not known (the runs' "
        "configs were not found); the paper's authors' code used T = 0.1: expect an offset "
        "from the paper's numbers where T differs.", ''])
    rows = list(csv.DictReader(open(out / 'table_4.csv')))
    assert [(r['row'], r['runs'], r['median'], r['std'], r['paper'], r['paper_std'],
             r['difference'], r['ci_low'], r['resampled']) for r in rows] == [
        ('ResNet18', '3', '0.790', '0.010', '0.785', '0.015', '+0.005', '', ''),
        ('DeiT-B', '3', '0.840', '0.010', '0.840', '0.013', '+0.000', '', ''),
        ('DeiT-T', '3', '0.810', '0.010', '0.810', '0.013', '+0.000', '', '')]

    figures = plot_figures(cells, str(out))
    assert [p.split('/')[-1] for p in figures] == ['figure1_initialisation.png',
                                                   'figure3_capacity.png']
    for path in figures:
        image = cv2.imread(path)
        assert image is not None and image.shape[0] > 100 and np.std(image) > 10


def _drawn(ax):
    """What a panel shows: our series (label -> x, median, std) and the paper's hollow
    markers (label -> x, median), read back from the artists."""
    ours = {}
    for container in ax.containers:
        line, _, (bars, ) = container
        ours[container.get_label()] = (list(line.get_xdata()), list(line.get_ydata()),
                                       [(top - bottom) / 2 for (_, bottom), (_, top)
                                        in bars.get_segments()])
        assert line.get_markerfacecolor() != 'none'
    paper = {}
    for line in ax.lines:
        if line.get_label().endswith(', paper'):
            assert line.get_markerfacecolor() == 'none' and line.get_linestyle() == 'None'
            paper[line.get_label()] = (list(line.get_xdata()), list(line.get_ydata()))
    return ours, paper


def test_figures_draw_the_papers_medians_beside_ours(study_root):
    from medtrans.analysis.summary import figure_capacity, figure_initialisation

    cells = summarize(collect_results([str(study_root)])[0])

    def ours(key):
        values = RUNS[key]
        return statistics.median(values), (statistics.stdev(values) if len(values) > 1 else 0)

    figure = figure_initialisation(cells)
    assert [(ax.get_title(), ax.get_ylabel()) for ax in figure.axes] == [
        ('APTOS2019', 'kappa'), ('ISIC2019', 'recall')]
    (deit, deit_std), (resnet, resnet_std) = (
        ours(('Table 1', f'ImageNet {model}', 'APTOS2019', 'kappa'))
        for model in ('DeiT-S', 'ResNet50'))
    drawn = _drawn(figure.axes[0])
    assert drawn[0].keys() == {'ResNet50 fine-tuned', 'DeiT-S fine-tuned'}
    assert drawn[0]['ResNet50 fine-tuned'][:2] == ([1], [resnet])
    assert drawn[0]['DeiT-S fine-tuned'][:2] == ([1], [deit])
    assert drawn[0]['ResNet50 fine-tuned'][2] == pytest.approx([resnet_std], abs=1e-12)
    assert drawn[0]['DeiT-S fine-tuned'][2] == pytest.approx([deit_std], abs=1e-12)
    # x: 0 random, 1 ImageNet, 2 ImageNet+DINO; the paper's medians of Tables 1 and 3.
    assert drawn[1] == {'ResNet50 fine-tuned, paper': ([1], [0.893]),
                        'DeiT-S fine-tuned, paper': ([1], [0.896])}
    assert _drawn(figure.axes[1]) == (
        {'DeiT-S fine-tuned': ([0], [0.61], [0.0]), 'DeiT-S k-NN': ([2], [0.64], [0.0])},
        {'DeiT-S fine-tuned, paper': ([0], [0.579]), 'DeiT-S k-NN, paper': ([2], [0.637])})
    assert [text.get_text() for text in figure.legends[0].get_texts()] == [
        'ResNet50 fine-tuned', 'ResNet50 fine-tuned, paper', 'DeiT-S fine-tuned',
        'DeiT-S fine-tuned, paper', 'DeiT-S k-NN', 'DeiT-S k-NN, paper']

    figure = figure_capacity(cells)
    (ax, ) = figure.axes
    assert (ax.get_title(), ax.get_ylabel(), ax.get_xlabel()) == ('ISIC2019', 'recall',
                                                                  'parameters (M)')
    medians = {row: ours(('Table 4', row, 'ISIC2019', 'recall')) for row in
               ('ResNet18', 'DeiT-T', 'DeiT-B')}
    drawn = _drawn(ax)
    assert {label: series[:2] for label, series in drawn[0].items()} == {
        'ResNet': ([11.2], [medians['ResNet18'][0]]),
        'DeiT': ([5.5, 85.8], [medians['DeiT-T'][0], medians['DeiT-B'][0]])}
    assert drawn[1] == {'ResNet, paper': ([11.2], [0.785]),
                        'DeiT, paper': ([5.5, 85.8], [0.810, 0.840])}


KNN_CONFIG = 'configs/knn/deit-s/knn_deit-s_random_1xb64_isic2019-224.py'
CLS_CONFIG = 'configs/classification/deit-s/deit-s_in1k_1xb64_plateau_isic2019-224.py'


def test_the_knn_temperature_is_read_from_the_configs_the_runs_ran_with(tmp_path, repo_root):
    from mmengine.config import Config

    for seed in range(2):
        _write_run(tmp_path / 'knn' / f'seed{seed}', 'Table 3', 'random DeiT-S', 'ISIC2019',
                   'recall', seed, 0.13, config=str(repo_root / KNN_CONFIG))
    # A run evaluated with --temperature 0.1: the copy of its config in its work dir says so.
    folder = tmp_path / 'knn-t01' / 'seed0'
    _write_run(folder, 'Table 3', 'ImageNet DeiT-S', 'ISIC2019', 'recall', 0, 0.25,
               config=str(repo_root / KNN_CONFIG))
    cfg = Config.fromfile(str(repo_root / KNN_CONFIG))
    cfg.test_cfg.temperature = 0.1
    cfg.dump(str(folder / KNN_CONFIG.split('/')[-1]))
    _write_run(tmp_path / 'cls' / 'seed0', 'Table 1', 'random DeiT-S', 'ISIC2019', 'recall', 0,
               0.6, config=str(repo_root / CLS_CONFIG))
    cells = summarize(collect_results([str(tmp_path)])[0])
    assert [(c.table, c.row, c.knn_temperatures) for c in cells] == [
        ('Table 1', 'random DeiT-S', ()), ('Table 3', 'ImageNet DeiT-S', (0.1, )),
        ('Table 3', 'random DeiT-S', (0.07, ))]
    write_tables(cells, str(tmp_path / 'out'))
    notes = (tmp_path / 'out' / 'table_3.md').read_text().splitlines()[-1]
    assert notes == ("k-NN vote temperature T (weights exp(similarity / T)): ours 0.07 and 0.1 "
                     "(the runs' configs); the paper's authors' code used T = 0.1: expect an "
                     "offset from the paper's numbers.")
    assert 'k-NN' not in (tmp_path / 'out' / 'table_1.md').read_text()
    rows = list(csv.DictReader(open(tmp_path / 'out' / 'table_3.csv')))
    assert [(r['row'], r['knn_temperature']) for r in rows] == [('ImageNet DeiT-S', '0.1'),
                                                                ('random DeiT-S', '0.07')]
    cells[2].knn_temperatures = (0.1, )
    write_tables(cells[1:], str(tmp_path / 'same'))
    assert (tmp_path / 'same' / 'table_3.md').read_text().splitlines()[-1].endswith(
        "ours 0.1 (the runs' configs); the paper's authors' code used T = 0.1, as ours.")


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


def test_bootstrap_interval_is_the_percentiles_of_the_resampled_median(tmp_path, repo_root,
                                                                      capsys):
    from mmengine.config import Config
    from sklearn.metrics import cohen_kappa_score

    from medtrans.analysis.bootstrap import bootstrap_interval
    from medtrans.testing import write_csv, write_images

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

    # summarize reads the groups of the test set from the data, where the runs read it (their
    # configs' copies in their work dirs); APTOS has none: images are resampled.
    data = tmp_path / 'data'
    for seed in range(3):
        cfg = Config.fromfile(str(repo_root / APTOS))
        cfg.test_dataloader.dataset.update(data_root=str(data), split='all')
        cfg.dump(str(tmp_path / f'seed{seed}' / APTOS.split('/')[-1]))
    cells = summarize(collect_results([str(tmp_path)])[0], bootstrap=200, seed=5)
    assert cells[0].interval is None
    assert (f'summarize: no bootstrap interval for Table 1 / ImageNet DeiT-S / APTOS2019: the '
            'groups (patients, lesions) of its test set could not be read from its dataset, '
            'which needs the data where the run read it (FileNotFoundError: APTOS2019Dataset: '
            f'data_root "{data}" not found') in capsys.readouterr().out
    write_csv(str(data / 'train.csv'), [('id_code', 'diagnosis')] +
              [(f'img{i}', str(label)) for i, label in enumerate(labels)])
    write_images(str(data / 'train_images'), [f'img{i}.png' for i in range(40)], seed=0, size=8)
    cells = summarize(collect_results([str(tmp_path)])[0], bootstrap=200, seed=5)
    assert (cells[0].interval, cells[0].resampled) == ((low, high), 'image')
    write_tables(cells, str(tmp_path / 'out'))
    table = (tmp_path / 'out' / 'table_1.md').read_text()
    assert f'(3) [{low:.3f}, {high:.3f}]' in table
    assert table.endswith('\nMetric: kappa.\nBootstrap intervals resample the test set by the '
                          'unit its split groups by: images (APTOS2019).\n')

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
