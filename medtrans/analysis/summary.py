"""Result tables and figures from the work dirs of a study (``tools/analysis/summarize.py``).

Each run's ``study_run.json`` (written by the study runner) places it in a cell and names the
metric its table reports; its ``metrics/test_latest.json`` holds the value. A cell summarises its
runs (one per seed) as median +- standard deviation (sample standard deviation, ``ddof=1``; 0
for a single run) with the run count, beside the paper's number and the difference, and, where
every run saved its per-image record (``predictions.csv``), a 95% bootstrap interval of the
median over resampled test images (:mod:`medtrans.analysis.bootstrap`).
"""
import csv
import io
import json
import math
import os
import os.path as osp
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from medtrans.fileio import atomic_write_text

from .bootstrap import bootstrap_interval
from .paper import PAPER_RESULTS, PARAMETERS
from .study import RUN_RECORD

__all__ = ['RunResult', 'Cell', 'collect_results', 'summarize', 'write_tables',
           'plot_figures']


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
    paper: Optional[float] = None
    interval: Optional[Tuple[float, float]] = None  # bootstrap 95% interval of the median

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


def summarize(results: Sequence[RunResult], bootstrap: int = 0,
              seed: int = 0) -> List[Cell]:
    """Group runs into cells (first appearance order) with the paper's numbers.

    Args:
        results (Sequence[RunResult]): From :func:`collect_results`.
        bootstrap (int): Resamples of the bootstrap intervals; 0 for none. Defaults to 0.
        seed (int): Seed of the resampling. Defaults to 0.

    Raises:
        ValueError: Two runs of one cell with the same seed, or with different metrics.
    """
    cells: Dict[Tuple[str, str, str], Cell] = {}
    seeds = defaultdict(set)
    for result in results:
        key = (result.table, result.row, result.column)
        cell = cells.setdefault(key, Cell(*key, metric=result.metric,
                                          paper=PAPER_RESULTS.get(key)))
        if result.metric != cell.metric:
            raise ValueError(f'summarize: cell {key} mixes metrics {cell.metric} and '
                             f'{result.metric} ({result.work_dir}).')
        if result.seed in seeds[key]:
            raise ValueError(f'summarize: cell {key} has two runs with seed {result.seed} '
                             f'(one is {result.work_dir}); summarise one study at a time.')
        seeds[key].add(result.seed)
        cell.runs.append(result)
    if bootstrap:
        for cell in cells.values():
            missing = [run.config for run in cell.runs if not osp.isfile(run.config)]
            if missing:
                # The interval recomputes the runs' metric with their config's test metric.
                print(f'summarize: no bootstrap interval for {cell.table} / {cell.row} / '
                      f'{cell.column}: config "{missing[0]}" not found from {os.getcwd()}; '
                      'run from the folder the study ran in.')
            elif all(run.predictions for run in cell.runs):
                cell.interval = bootstrap_interval(
                    [(run.config, run.metric, run.predictions) for run in cell.runs],
                    num_samples=bootstrap, seed=seed)
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
                 'Each cell: median +- std over seeds (runs) [95% bootstrap interval over test '
                 'images] | paper | ours - paper.', '',
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
                    text += f' \\| {cell.paper:.3f} \\| {cell.difference:+.3f}'
                entries.append(text)
            lines.append(f'| {row} | ' + ' | '.join(entries) + ' |')
        metrics = sorted({c.metric for c in table_cells})
        lines += ['', f'Metric: {", ".join(metrics)}.', '']
        stem = table.lower().replace(' ', '_')
        md_path = osp.join(out_dir, stem + '.md')
        atomic_write_text(md_path, '\n'.join(lines))
        text = io.StringIO()
        writer = csv.writer(text, lineterminator='\n')
        writer.writerow(['table', 'row', 'column', 'metric', 'runs', 'median', 'std', 'ci_low',
                         'ci_high', 'paper', 'difference', 'values'])
        for c in table_cells:
            low, high = c.interval or (None, None)
            writer.writerow([c.table, c.row, c.column, c.metric, c.count, _fmt(c.median),
                             _fmt(c.std), _fmt(low), _fmt(high), _fmt(c.paper),
                             _fmt(c.difference, signed=True),
                             ' '.join(f'{v:.6f}' for v in c.values)])
        csv_path = osp.join(out_dir, stem + '.csv')
        atomic_write_text(csv_path, text.getvalue())
        written += [md_path, csv_path]
    return written


_INITS = ('random', 'ImageNet', 'ImageNet+DINO')


def _panels(columns: Sequence[str], draw: Callable, path: str) -> str:
    """A row of panels, one per column, drawn by ``draw(ax, column)``, with one legend of every
    series above them, saved as ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3.2), squeeze=False)
    handles = {}
    for ax, column in zip(axes[0], columns):
        draw(ax, column)
        ax.set_title(column)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc='upper center',
               ncol=min(4, len(handles)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _series(ax, points: List[Tuple[float, Cell]], **style) -> None:
    """Medians with one-std error bars."""
    ax.errorbar([x for x, _ in points], [c.median for _, c in points],
                yerr=[c.std for _, c in points], capsize=3, **style)


def plot_figures(cells: Sequence[Cell], out_dir: str) -> List[str]:
    """Figure 1 (metric per initialisation, ResNet-50 vs DeiT-S, fine-tuned from Table 1 and
    k-NN from Table 3, error bars: std over seeds) and Figure 3 (metric vs parameters per family,
    from Table 4), for the tables present; returns the PNG files written."""
    by_key = {(c.table, c.row, c.column): c for c in cells}
    written = []

    def initialisation(ax, column):
        for table, style in (('Table 1', 'o-'), ('Table 3', 's--')):
            for model, colour in (('ResNet50', 'tab:blue'), ('DeiT-S', 'tab:red')):
                points = [(i, by_key[(table, f'{init} {model}', column)])
                          for i, init in enumerate(_INITS)
                          if (table, f'{init} {model}', column) in by_key]
                if points:
                    kind = 'fine-tuned' if table == 'Table 1' else 'k-NN'
                    _series(ax, points, fmt=style, color=colour, label=f'{model} {kind}')
        ax.set_xticks(range(len(_INITS)), _INITS, rotation=20)
        ax.set_xlim(-0.4, len(_INITS) - 0.6)

    columns = list(dict.fromkeys(c.column for c in cells if c.table in ('Table 1', 'Table 3')))
    if columns:
        written.append(_panels(columns, initialisation,
                               osp.join(out_dir, 'figure1_initialisation.png')))

    capacity = [c for c in cells if c.table == 'Table 4' and c.row in PARAMETERS]

    def parameters(ax, column):
        for family, colour in (('ResNet', 'tab:blue'), ('DeiT', 'tab:red')):
            points = sorted(((PARAMETERS[c.row], c) for c in capacity
                             if c.column == column and c.row.startswith(family)),
                            key=lambda point: point[0])
            if points:
                _series(ax, points, fmt='o-', color=colour, label=family)
        ax.set_xscale('log')
        ticks = sorted(PARAMETERS[c.row] for c in capacity if c.column == column)
        ax.set_xticks(ticks, [f'{t:g}' for t in ticks], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel('parameters (M)')

    if capacity:
        columns = list(dict.fromkeys(c.column for c in capacity))
        written.append(_panels(columns, parameters, osp.join(out_dir, 'figure3_capacity.png')))
    return written
