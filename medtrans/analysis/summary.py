"""Result tables and figures from the work dirs of a study (``tools/analysis/summarize.py``).

Each run's ``study_run.json`` (written by the study runner) places it in a cell and names the
metric its table reports; its ``metrics/test_latest.json`` holds the value. A cell summarises its
runs (one per seed) as median +- standard deviation (sample standard deviation, ``ddof=1``; 0
for a single run) with the run count, beside the paper's median +- standard deviation
(:mod:`medtrans.analysis.paper`) and the difference of the medians, and, where every run saved
its per-image record (``predictions.csv``), a 95% bootstrap interval of the median over
resamples of the test set by the unit its split groups by: patients, lesions, or images where
the data has no groups (:mod:`medtrans.analysis.bootstrap`). A table with k-NN runs (and the
paper's k-NN table) says which vote temperature the runs used, read from their configs, and
which the paper's authors used.
"""
import csv
import io
import json
import math
import os
import os.path as osp
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config

from medtrans.engine import KNNTestLoop
from medtrans.evaluation.functional.knn import DEFAULT_TEMPERATURE
from medtrans.fileio import atomic_write_text
from medtrans.registry import LOOPS, is_registered_subclass

from .bootstrap import bootstrap_interval, dataset_groups
from .paper import KNN_TABLE, KNN_TEMPERATURE, PAPER, PARAMETERS
from .study import RUN_RECORD

__all__ = ['RunResult', 'Cell', 'collect_results', 'ran_config', 'summarize', 'write_tables',
           'figure_initialisation', 'figure_capacity', 'plot_figures']


@dataclass
class RunResult:
    """One finished run: its cell, seed, metric name and value, config and predictions."""

    table: str
    row: str
    column: str
    seed: int
    metric: str
    value: float
    work_dir: str
    config: str = ''
    predictions: Optional[str] = None  # its per-image CSV (tools/test.py --out), if saved


@dataclass
class Cell:
    """A table cell: the runs' values summarised, and the paper's number."""

    table: str
    row: str
    column: str
    metric: str
    runs: List[RunResult] = field(default_factory=list)
    paper: Optional[float] = None  # the paper's median
    paper_std: Optional[float] = None  # and its standard deviation
    interval: Optional[Tuple[float, float]] = None  # bootstrap 95% interval of the median
    resampled: Optional[str] = None  # the interval's unit: 'patient', 'lesion', 'image'...
    knn_temperatures: Tuple[float, ...] = ()  # the k-NN runs' vote temperatures (configs)

    @property
    def values(self) -> List[float]:
        return [run.value for run in self.runs]

    @property
    def count(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float:
        return float(np.median(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.count > 1 else 0.0

    @property
    def difference(self) -> Optional[float]:
        return None if self.paper is None else self.median - self.paper


def collect_results(work_roots: Sequence[str]) -> Tuple[List[RunResult], List[str]]:
    """Read every run under the work roots (any depth) that has a study record.

    Returns:
        tuple: The finished runs, and the work dirs of runs without test metrics yet.

    Raises:
        ValueError: A record that cannot be read, or test metrics without the record's metric;
            the message names the file.
    """
    results, unfinished = [], []
    for root in work_roots:
        if not osp.isdir(root):
            raise ValueError(f'summarize: work root "{root}" is not a folder.')
        for folder, _, files in sorted(os.walk(root)):
            if RUN_RECORD not in files:
                continue
            record_path = osp.join(folder, RUN_RECORD)
            try:
                with open(record_path) as f:
                    record = json.load(f)
                cell = [record[key] for key in ('table', 'row', 'column', 'seed', 'metric')]
                config = str(record.get('config', ''))
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise ValueError(f'summarize: "{record_path}" is not a study run record '
                                 f'({err!r}).') from err
            metrics_path = osp.join(folder, 'metrics', 'test_latest.json')
            if not osp.isfile(metrics_path):
                unfinished.append(folder)
                continue
            with open(metrics_path) as f:
                metrics = json.load(f).get('metrics', {})
            value = metrics.get(cell[4])
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f'summarize: "{metrics_path}" has no number for the metric '
                                 f'"{cell[4]}" that {record_path} names (metrics: '
                                 f'{sorted(metrics)}).')
            predictions = osp.join(folder, 'predictions.csv')
            results.append(RunResult(*cell[:4], metric=cell[4], value=float(value),
                                     work_dir=folder, config=config,
                                     predictions=predictions if osp.isfile(predictions)
                                     else None))
    return results, unfinished


def ran_config(run: RunResult) -> Optional[str]:
    """The config a run ran with: the copy MMEngine's Runner wrote in its work dir (named as
    the config file; it holds the command line's changes: data root, ``--cfg-options``, k-NN
    ``--temperature``), else the study's config file; None where neither is found."""
    dumped = osp.join(run.work_dir, osp.basename(run.config))
    if run.config and osp.isfile(dumped):
        return dumped
    return run.config if osp.isfile(run.config) else None


def _knn_temperature(config: str) -> Optional[float]:
    """The vote temperature of a k-NN config (its test loop a ``KNNTestLoop``), else None."""
    cfg = Config.fromfile(config)
    test_cfg = cfg.get('test_cfg') or {}
    if not is_registered_subclass(LOOPS, test_cfg.get('type'), KNNTestLoop,
                                  cfg.get('default_scope') or 'medtrans'):
        return None
    return float(test_cfg.get('temperature', DEFAULT_TEMPERATURE))


def _test_groups(config: str,
                 known: Dict[str, tuple]) -> Tuple[Optional[Dict[str, Hashable]], str]:
    """:func:`~medtrans.analysis.bootstrap.dataset_groups` of a config's test dataset, read
    once per dataset config (``known``: its text -> the result)."""
    cfg = Config.fromfile(config)
    dataset = cfg.test_dataloader.dataset.to_dict()
    scope = cfg.get('default_scope') or 'medtrans'
    key = repr((scope, dataset))
    if key not in known:
        known[key] = dataset_groups(dataset, scope)
    return known[key]


def summarize(results: Sequence[RunResult], bootstrap: int = 0,
              seed: int = 0) -> List[Cell]:
    """Group runs into cells (first appearance order) with the paper's numbers and, for k-NN
    runs, their vote temperatures.

    Args:
        results (Sequence[RunResult]): From :func:`collect_results`.
        bootstrap (int): Resamples of the bootstrap intervals; 0 for none. The test set is
            resampled by the groups its dataset's data infos name (patients, lesions), read by
            building the test dataset of the config the first run of the cell ran with
            (:func:`ran_config`), so the data must be where that run read it. Defaults to 0.
        seed (int): Seed of the resampling. Defaults to 0.

    Raises:
        ValueError: Two runs of one cell with the same seed, or with different metrics.
    """
    cells: Dict[Tuple[str, str, str], Cell] = {}
    seeds = defaultdict(set)
    for result in results:
        key = (result.table, result.row, result.column)
        paper, paper_std = PAPER.get(key, (None, None))
        cell = cells.setdefault(key, Cell(*key, metric=result.metric, paper=paper,
                                          paper_std=paper_std))
        if result.metric != cell.metric:
            raise ValueError(f'summarize: cell {key} mixes metrics {cell.metric} and '
                             f'{result.metric} ({result.work_dir}).')
        if result.seed in seeds[key]:
            raise ValueError(f'summarize: cell {key} has two runs with seed {result.seed} '
                             f'(one is {result.work_dir}); summarise one study at a time.')
        seeds[key].add(result.seed)
        cell.runs.append(result)
    for cell in cells.values():
        configs = [ran_config(run) for run in cell.runs]
        temperatures = [_knn_temperature(config) for config in configs if config]
        cell.knn_temperatures = tuple(sorted({t for t in temperatures if t is not None}))
    if bootstrap:
        known: Dict[str, tuple] = {}
        for cell in cells.values():
            where = f'{cell.table} / {cell.row} / {cell.column}'
            missing = [run.config for run in cell.runs if not osp.isfile(run.config)]
            if missing:
                # The interval recomputes the runs' metric with their config's test metric.
                print(f'summarize: no bootstrap interval for {where}: config "{missing[0]}" not '
                      f'found from {os.getcwd()}; run from the folder the study ran in.')
                continue
            if not all(run.predictions for run in cell.runs):
                continue
            try:
                groups, unit = _test_groups(ran_config(cell.runs[0]), known)
            except (OSError, ValueError, KeyError, TypeError) as err:
                # Resampling images where the data has groups would give too narrow an
                # interval: none rather than a wrong one.
                print(f'summarize: no bootstrap interval for {where}: the groups (patients, '
                      'lesions) of its test set could not be read from its dataset, which '
                      f'needs the data where the run read it ({type(err).__name__}: {err}).')
                continue
            # The runs' own test metric (the study's config, not the run's copy, whose test
            # evaluator may hold the metric that wrote predictions.csv).
            cell.interval = bootstrap_interval(
                [(run.config, run.metric, run.predictions) for run in cell.runs],
                num_samples=bootstrap, seed=seed, groups=groups)
            if cell.interval is not None:
                cell.resampled = unit
    return list(cells.values())


def _fmt(value: Optional[float], signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ''
    return f'{value:+.3f}' if signed else f'{value:.3f}'


def _tables(cells: Sequence[Cell]) -> Dict[str, List[Cell]]:
    tables: Dict[str, List[Cell]] = defaultdict(list)
    for cell in cells:
        tables[cell.table].append(cell)
    return tables


def _notes(table: str, cells: Sequence[Cell]) -> List[str]:
    """The table's footer: its metrics, what its intervals resample, its k-NN temperature."""
    metrics = sorted({c.metric for c in cells})
    notes = [f'Metric: {", ".join(metrics)}.']
    units: Dict[str, List[str]] = {}
    for c in cells:
        if c.interval is not None and c.column not in units.setdefault(c.resampled, []):
            units[c.resampled].append(c.column)
    if units:
        notes.append('Bootstrap intervals resample the test set by the unit its split groups '
                     'by: ' + '; '.join(f'{unit}s ({", ".join(columns)})'
                                        for unit, columns in units.items()) + '.')
    temperatures = sorted({t for c in cells for t in c.knn_temperatures})
    if temperatures or table == KNN_TABLE:
        if not temperatures:
            ours, offset = ('not known (the runs\' configs were not found)',
                            ': expect an offset from the paper\'s numbers where T differs')
        else:
            ours = ' and '.join(f'{t:g}' for t in temperatures) + ' (the runs\' configs)'
            offset = (', as ours' if temperatures == [KNN_TEMPERATURE]
                      else ': expect an offset from the paper\'s numbers')
        notes.append(f'k-NN vote temperature T (weights exp(similarity / T)): ours {ours}; the '
                     f'paper\'s authors\' code used T = {KNN_TEMPERATURE:g}{offset}.')
    return notes


def write_tables(cells: Sequence[Cell], out_dir: str) -> List[str]:
    """Write each table in the study's layout (rows x columns) as Markdown, and every cell as
    CSV rows; returns the files written (``<table>.md``, ``<table>.csv``, named like
    ``table_1``)."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for table, table_cells in _tables(cells).items():
        rows = list(dict.fromkeys(c.row for c in table_cells))
        columns = list(dict.fromkeys(c.column for c in table_cells))
        by_key = {(c.row, c.column): c for c in table_cells}
        lines = [f'# {table}', '',
                 'Each cell: median +- std over seeds (runs) [95% bootstrap interval of the '
                 'median] | paper: median +- std | ours - paper (medians).', '',
                 '| | ' + ' | '.join(columns) + ' |', '|---' * (len(columns) + 1) + '|']
        for row in rows:
            entries = []
            for column in columns:
                cell = by_key.get((row, column))
                if cell is None:
                    entries.append('')
                    continue
                text = f'{cell.median:.3f} +- {cell.std:.3f} ({cell.count})'
                if cell.interval is not None:
                    text += f' [{cell.interval[0]:.3f}, {cell.interval[1]:.3f}]'
                if cell.paper is not None:
                    text += (f' \\| {cell.paper:.3f} +- {cell.paper_std:.3f} '
                             f'\\| {cell.difference:+.3f}')
                entries.append(text)
            lines.append(f'| {row} | ' + ' | '.join(entries) + ' |')
        lines += [''] + _notes(table, table_cells) + ['']
        stem = table.lower().replace(' ', '_')
        md_path = osp.join(out_dir, stem + '.md')
        atomic_write_text(md_path, '\n'.join(lines))
        text = io.StringIO()
        writer = csv.writer(text, lineterminator='\n')
        writer.writerow(['table', 'row', 'column', 'metric', 'runs', 'median', 'std', 'ci_low',
                         'ci_high', 'resampled', 'paper', 'paper_std', 'difference',
                         'knn_temperature', 'values'])
        for c in table_cells:
            low, high = c.interval or (None, None)
            writer.writerow([c.table, c.row, c.column, c.metric, c.count, _fmt(c.median),
                             _fmt(c.std), _fmt(low), _fmt(high), c.resampled or '',
                             _fmt(c.paper), _fmt(c.paper_std), _fmt(c.difference, signed=True),
                             ' '.join(f'{t:g}' for t in c.knn_temperatures),
                             ' '.join(f'{v:.6f}' for v in c.values)])
        csv_path = osp.join(out_dir, stem + '.csv')
        atomic_write_text(csv_path, text.getvalue())
        written += [md_path, csv_path]
    return written


_INITS = ('random', 'ImageNet', 'ImageNet+DINO')
#: The marker size of the paper's medians, hollow rings around ours, and their legend suffix.
_PAPER_MARKER_SIZE = 10
_PAPER = ', paper'


def _panels(columns: Sequence[str], draw: Callable):
    """A figure with a row of panels, one per column, drawn by ``draw(ax, column)`` (which
    returns the metrics drawn, the panel's y label), and one legend of every series above, each
    of ours followed by the paper's."""
    from matplotlib.figure import Figure

    fig = Figure()
    handles = {}
    for ax, column in zip(fig.subplots(1, len(columns), squeeze=False)[0], columns):
        ax.set_ylabel(', '.join(dict.fromkeys(draw(ax, column))))
        ax.set_title(column)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    series = list(dict.fromkeys(label.removesuffix(_PAPER) for label in handles))
    labels = sorted(handles, key=lambda label: (series.index(label.removesuffix(_PAPER)),
                                                label.endswith(_PAPER)))
    ncol = min(4, 2 * len(columns), len(labels)) or 1
    legend_height = 0.25 * -(-len(labels) // ncol)  # inches, one row per ncol entries
    fig.set_size_inches(3.2 * len(columns), 3.2 + legend_height)
    fig.legend([handles[label] for label in labels], labels, loc='upper center', ncol=ncol,
               fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - (legend_height + 0.1) / (3.2 + legend_height)))
    return fig


def _series(ax, points: List[Tuple[float, Cell]], marker: str, color: str, label: str,
            linestyle: str = '-') -> List[str]:
    """Our medians with one-std error bars, and the paper's medians as hollow markers of the
    same shape and colour at the same places (label ``<label>, paper``); returns the metrics
    drawn."""
    ax.errorbar([x for x, _ in points], [c.median for _, c in points],
                yerr=[c.std for _, c in points], capsize=3, marker=marker, color=color,
                linestyle=linestyle, label=label)
    paper = [(x, c.paper) for x, c in points if c.paper is not None]
    if paper:
        ax.plot([x for x, _ in paper], [y for _, y in paper], linestyle='none', marker=marker,
                markersize=_PAPER_MARKER_SIZE, markerfacecolor='none', markeredgecolor=color,
                label=label + _PAPER)
    return [c.metric for _, c in points]


def figure_initialisation(cells: Sequence[Cell]):
    """Figure 1: the metric per initialisation, ResNet-50 and DeiT-S, fine-tuned (Table 1) and
    k-NN (Table 3), one panel per dataset; ours with one-std error bars, the paper's medians as
    hollow markers. None when neither table has cells."""
    by_key = {(c.table, c.row, c.column): c for c in cells}

    def draw(ax, column):
        metrics = []
        for table, marker, linestyle in (('Table 1', 'o', '-'), (KNN_TABLE, 's', '--')):
            for model, colour in (('ResNet50', 'tab:blue'), ('DeiT-S', 'tab:red')):
                points = [(i, by_key[(table, f'{init} {model}', column)])
                          for i, init in enumerate(_INITS)
                          if (table, f'{init} {model}', column) in by_key]
                if points:
                    kind = 'fine-tuned' if table == 'Table 1' else 'k-NN'
                    metrics += _series(ax, points, marker, colour, f'{model} {kind}',
                                       linestyle)
        ax.set_xticks(range(len(_INITS)), _INITS, rotation=20)
        ax.set_xlim(-0.4, len(_INITS) - 0.6)
        return metrics

    columns = list(dict.fromkeys(c.column for c in cells if c.table in ('Table 1', KNN_TABLE)))
    return _panels(columns, draw) if columns else None


def figure_capacity(cells: Sequence[Cell]):
    """Figure 3: the metric against the backbone's parameters per family (Table 4), one panel
    per dataset; ours with one-std error bars, the paper's medians as hollow markers. None when
    Table 4 has no cells of :data:`~medtrans.analysis.paper.PARAMETERS`' models."""
    capacity = [c for c in cells if c.table == 'Table 4' and c.row in PARAMETERS]

    def draw(ax, column):
        metrics = []
        for family, colour in (('ResNet', 'tab:blue'), ('DeiT', 'tab:red')):
            points = sorted(((PARAMETERS[c.row], c) for c in capacity
                             if c.column == column and c.row.startswith(family)),
                            key=lambda point: point[0])
            if points:
                metrics += _series(ax, points, 'o', colour, family)
        ax.set_xscale('log')
        ticks = sorted(PARAMETERS[c.row] for c in capacity if c.column == column)
        ax.set_xticks(ticks, [f'{t:g}' for t in ticks], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel('parameters (M)')
        return metrics

    columns = list(dict.fromkeys(c.column for c in capacity))
    return _panels(columns, draw) if columns else None


def plot_figures(cells: Sequence[Cell], out_dir: str) -> List[str]:
    """Save :func:`figure_initialisation` as ``figure1_initialisation.png`` and
    :func:`figure_capacity` as ``figure3_capacity.png``, for the tables present; returns the
    PNG files written."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, figure in (('figure1_initialisation.png', figure_initialisation(cells)),
                         ('figure3_capacity.png', figure_capacity(cells))):
        if figure is not None:
            path = osp.join(out_dir, name)
            figure.savefig(path, dpi=120)
            written.append(path)
    return written
