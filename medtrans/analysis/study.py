"""A study: many runs (configs x seeds) placed in the cells of result tables, launched one after
another or as cluster commands, resumable, and read back for the summaries.

A study spec is a Python config file (``configs/studies/``)::

    work_root = 'work_dirs/studies/table1'      # default: work_dirs/studies/<spec name>
    seeds = [0, 1, 2, 3, 4]
    # explicit cells ...
    cells = [dict(table='Table 2', row='DeepLabV3 DeiT-S', column='ISIC2018',
                  config='configs/deeplab3_deit_s_isic2018.py')]
    # ... and/or a grid: every combination of the named values fills the templates
    grid = dict(table='Table 1', row='{init} {model}', column='{dataset}',
                config='configs/classification/{m}/{m}_{i}_1xb64_plateau_{d}-224.py',
                values=dict(model=dict(ResNet50=dict(m='resnet50')), ...))

Each run (a cell's config with one seed) works in ``<work_root>/<config name>/seed<seed>``. Its
record ``study_run.json`` there holds the cell, the seed, the config, the metric the table
reports (the config's ``monitor``), the git commit and the package versions. A run is done when
its test metrics (``metrics/test_latest.json``) exist; a started run resumes from its newest
checkpoint.
"""
import itertools
import json
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Callable, Dict, List, Optional

from mmengine.config import Config

from medtrans.fileio import atomic_write_text

__all__ = ['StudyRun', 'Study', 'load_study', 'run_status', 'run_commands', 'run_study',
           'cluster_script', 'write_run_record', 'RUN_RECORD']

#: The record each run's work dir holds.
RUN_RECORD = 'study_run.json'
_PACKAGES = ('medtrans', 'torch', 'mmengine', 'mmcv', 'mmseg', 'mmpretrain', 'timm')


@dataclass(frozen=True)
class StudyRun:
    """One run of a study: a cell's config with one seed."""

    table: str
    row: str
    column: str
    config: str
    seed: int
    work_dir: str

    @property
    def name(self) -> str:
        return f'{osp.splitext(osp.basename(self.config))[0]} seed {self.seed}'


@dataclass
class Study:
    """A study spec, expanded: its runs in spec order (cells, then grid; seeds innermost)."""

    name: str
    work_root: str
    runs: List[StudyRun]


def _grid_cells(grid: dict, spec_path: str) -> List[dict]:
    values = grid.get('values')
    if not isinstance(values, dict) or not values:
        raise ValueError(f'{spec_path}: grid.values must map each axis (e.g. model) to a dict '
                         'of {display name: {template field: value}}.')
    cells = []
    axes = list(values)
    for choice in itertools.product(*(list(values[axis].items()) for axis in axes)):
        fields = {}
        for axis, (display, extra) in zip(axes, choice):
            fields[axis] = display
            fields.update(extra or {})
        try:
            cells.append({key: grid[key].format(**fields)
                          for key in ('table', 'row', 'column', 'config')})
        except KeyError as err:
            raise ValueError(f'{spec_path}: grid template field {err} is not given by '
                             f'grid.values (axes: {axes}).') from err
    return cells


def load_study(spec_path: str) -> Study:
    """Read a study spec and expand it into runs.

    Raises:
        ValueError: No cells, no seeds, a cell without its fields, a config file that does
            not exist, or two cells with one config.
    """
    spec = Config.fromfile(spec_path)
    name = osp.splitext(osp.basename(spec_path))[0]
    work_root = spec.get('work_root') or osp.join('work_dirs', 'studies', name)
    seeds = list(spec.get('seeds') or [])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f'{spec_path}: seeds must be a non-empty list of ints, got {seeds!r}.')
    cells = [dict(c) for c in spec.get('cells') or []]
    if spec.get('grid'):
        cells += _grid_cells(spec.grid, spec_path)
    if not cells:
        raise ValueError(f'{spec_path}: no cells; give cells=[dict(table, row, column, config)] '
                         'or a grid.')
    runs, seen = [], {}
    for cell in cells:
        missing = [key for key in ('table', 'row', 'column', 'config') if not cell.get(key)]
        if missing:
            raise ValueError(f'{spec_path}: cell {cell} lacks {", ".join(missing)}.')
        if not osp.isfile(cell['config']):
            raise ValueError(f'{spec_path}: cell {cell["table"]} / {cell["row"]} / '
                             f'{cell["column"]}: config "{cell["config"]}" not found.')
        if cell['config'] in seen:
            raise ValueError(f'{spec_path}: config "{cell["config"]}" is in two cells '
                             f'({seen[cell["config"]]} and {cell["row"]} / {cell["column"]}); '
                             'its runs would share their work dirs.')
        seen[cell['config']] = f'{cell["row"]} / {cell["column"]}'
        stem = osp.splitext(osp.basename(cell['config']))[0]
        for seed in seeds:
            runs.append(StudyRun(cell['table'], cell['row'], cell['column'], cell['config'],
                                 seed, osp.join(work_root, stem, f'seed{seed}')))
    return Study(name, work_root, runs)


def run_status(run: StudyRun) -> str:
    """``'done'`` (test metrics written), ``'started'`` (a record or checkpoint) or ``'todo'``."""
    if osp.isfile(osp.join(run.work_dir, 'metrics', 'test_latest.json')):
        return 'done'
    if osp.isdir(run.work_dir) and any(
            name == RUN_RECORD or name.endswith('.pth') for name in os.listdir(run.work_dir)):
        return 'started'
    return 'todo'


def _kind(config: str) -> str:
    """``'knn'`` for a k-NN config (its test loop is ``KNNTestLoop``: nothing is trained),
    else ``'classification'`` or ``'segmentation'``."""
    cfg = Config.fromfile(config)
    if str((cfg.get('test_cfg') or {}).get('type', '')).endswith('KNNTestLoop'):
        return 'knn'
    return 'classification' if 'Classifier' in str(cfg.model.get('type')) else 'segmentation'


def _best_checkpoint(work_dir: str) -> str:
    return f'"$(ls -t {work_dir}/best_*.pth | head -n 1)"'


def run_commands(run: StudyRun, launcher: str = 'none', gpus: int = 1,
                 partition: Optional[str] = None, python: str = 'python') -> List[str]:
    """The shell commands of one run: training (resumed if started) then testing of the best
    checkpoint, or the k-NN evaluation of an evaluation config.

    Args:
        run (StudyRun): The run.
        launcher (str): ``'none'`` (one process), ``'pytorch'`` (``tools/dist_*.sh`` with
            ``gpus`` processes, torchrun) or ``'slurm'`` (``tools/slurm_train.sh`` on
            ``partition``, testing by ``srun`` on one GPU). Defaults to ``'none'``.
        gpus (int): Processes for ``'pytorch'``, total GPUs for ``'slurm'``. Defaults to 1.
        partition (str, optional): Slurm partition. Required for ``'slurm'``.
        python (str): Python executable for ``'none'``. Defaults to ``'python'``.

    Returns:
        list[str]: Commands, to run in order from the repository root.
    """
    seed = f'randomness.seed={run.seed}'
    work = f'--work-dir {run.work_dir}'
    kind = _kind(run.config)
    if kind == 'knn':
        return [f'{python} tools/knn_eval.py {run.config} {work}']
    resume = ' --resume' if osp.isdir(run.work_dir) and any(
        name.endswith('.pth') for name in os.listdir(run.work_dir)) else ''
    best = _best_checkpoint(run.work_dir)
    # Per-image class probabilities beside the test metrics.
    out = f' --out {run.work_dir}/predictions.csv' if kind == 'classification' else ''
    if launcher == 'none':
        return [f'{python} tools/train.py {run.config} {work} --cfg-options {seed}{resume}',
                f'{python} tools/test.py {run.config} {best} {work}{out}']
    if launcher == 'pytorch':
        return [f'bash tools/dist_train.sh {run.config} {gpus} {work} --cfg-options {seed}'
                f'{resume}', f'bash tools/dist_test.sh {run.config} {best} {gpus} {work}{out}']
    if launcher == 'slurm':
        if not partition:
            raise ValueError("run_commands: launcher 'slurm' needs a partition.")
        job = osp.splitext(osp.basename(run.config))[0][:40] + f'-s{run.seed}'
        return [f'GPUS={gpus} bash tools/slurm_train.sh {partition} {job} {run.config} {work} '
                f'--cfg-options {seed}{resume}',
                f'srun -p {partition} --job-name={job}-test --gres=gpu:1 --ntasks=1 '
                f'python -u tools/test.py {run.config} {best} {work}{out} --launcher slurm']
    raise ValueError(f"run_commands: launcher must be 'none', 'pytorch' or 'slurm', got "
                     f'{launcher!r}.')


def _git_commit() -> Optional[str]:
    try:
        out = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                             cwd=osp.dirname(osp.abspath(__file__)), timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _versions() -> Dict[str, Optional[str]]:
    from importlib.metadata import PackageNotFoundError, version
    found = {}
    for package in _PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def write_run_record(run: StudyRun) -> dict:
    """Write (or update the start time of) a run's ``study_run.json``; returns the record."""
    os.makedirs(run.work_dir, exist_ok=True)
    record = dict(asdict(run), metric=Config.fromfile(run.config).get('monitor'),
                  git_commit=_git_commit(), versions=_versions(),
                  started=datetime.now().isoformat(timespec='seconds'))
    atomic_write_text(osp.join(run.work_dir, RUN_RECORD), json.dumps(record, indent=1) + '\n')
    return record


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f'{minutes // 60}h{minutes % 60:02d}m' if minutes >= 60 else f'{minutes}m'


def run_study(study: Study, dry_run: bool = False, python: str = sys.executable,
              execute: Optional[Callable[[str, str], int]] = None,
              print_fn: Callable[[str], None] = print) -> Dict[str, int]:
    """Run a study's runs that are not done, one after another, in this machine.

    A progress line per run names it, the runs left and an ETA from the runs finished so far.
    Each run's output goes to ``<work_dir>/study.log``. A failed command stops the study (its
    status stays ``started``, so the next invocation resumes it).

    Args:
        study (Study): From :func:`load_study`.
        dry_run (bool): Only list each run with its status and commands. Defaults to False.
        python (str): Python executable of the runs. Defaults to this one.
        execute (Callable, optional): ``execute(command, log_file) -> exit status``; defaults to
            running the command in a shell from the current folder.
        print_fn (Callable): Where the progress lines go. Defaults to :func:`print`.

    Returns:
        dict[str, int]: Runs by status at the end (``done``, ``started``, ``todo``).

    Raises:
        RuntimeError: A command failed; the message names it and its log.
    """
    execute = execute or _shell
    todo = [run for run in study.runs if run_status(run) != 'done']
    done_before = len(study.runs) - len(todo)
    print_fn(f'study {study.name}: {len(study.runs)} runs, {done_before} done, '
             f'{len(todo)} to run (work root {study.work_root})')
    durations: List[float] = []
    for index, run in enumerate(todo):
        status = run_status(run)
        commands = run_commands(run, python=python)
        if dry_run:
            print_fn(f'[{status}] {run.table} | {run.row} | {run.column} | seed {run.seed}: '
                     + ' && '.join(commands))
            continue
        eta = (f', ETA {_duration(sum(durations) / len(durations) * (len(todo) - index))}'
               if durations else '')
        print_fn(f'[{done_before + index + 1}/{len(study.runs)}] {run.name} ({status}) '
                 f'{run.table} | {run.row} | {run.column}: {len(todo) - index - 1} left after '
                 f'this{eta}')
        start = time.monotonic()
        write_run_record(run)
        log = osp.join(run.work_dir, 'study.log')
        for command in commands:
            if execute(command, log) != 0:
                raise RuntimeError(f'study {study.name}: "{command}" failed; see {log}. '
                                   'Run the study again to resume it.')
        durations.append(time.monotonic() - start)
    counts = {'done': 0, 'started': 0, 'todo': 0}
    for run in study.runs:
        counts[run_status(run)] += 1
    return counts


def _shell(command: str, log_file: str) -> int:
    with open(log_file, 'a') as log:
        log.write(f'$ {command}\n')
        log.flush()
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        return subprocess.run(command, shell=True, stdout=log, stderr=subprocess.STDOUT,
                              env=env).returncode


def cluster_script(study: Study, launcher: str, gpus: int = 1,
                   partition: Optional[str] = None) -> str:
    """A bash script of the commands of every run not done, for a cluster (``'pytorch'`` or
    ``'slurm'``), one run after another; each run's record is written first."""
    lines = ['#!/usr/bin/env bash', f'# study {study.name}: generated by tools/run_study.py',
             'set -euo pipefail']
    for run in study.runs:
        if run_status(run) == 'done':
            continue
        write_run_record(run)
        lines.append(f'# {run.table} | {run.row} | {run.column} | seed {run.seed}')
        lines.extend(run_commands(run, launcher, gpus, partition))
    return '\n'.join(lines) + '\n'
