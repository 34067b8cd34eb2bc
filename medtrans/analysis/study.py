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

Runs that start from a self-supervised pretraining (the ImageNet+DINO rows) name it in
``pretraining``, a list of ``dict(config, export)`` or a grid of them (``config``: the DINO
config, ``export``: the backbone file the cells' configs read as ``pretrained``); each
pretraining runs once, before the cells, in
``<work_root>/pretraining/<config name>``, and its teacher backbone is exported to ``export``.

Each run (a cell's config with one seed) works in ``<work_root>/<config name>/seed<seed>``. Its
record ``study_run.json`` there holds the cell, the seed, the config, the metric the table
reports (the config's ``monitor``), the git commit and the package versions. A run is done when
its test metrics (``metrics/test_latest.json``) exist; a started run resumes from its newest
checkpoint.
"""
import functools
import itertools
import json
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.config import Config

from medtrans.engine import KNNTestLoop
from medtrans.fileio import atomic_write_text
from medtrans.registry import LOOPS, is_registered_subclass

__all__ = ['StudyRun', 'Pretraining', 'Study', 'load_study', 'run_status', 'run_commands',
           'run_study', 'cluster_script', 'write_run_record', 'RUN_RECORD']

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


@dataclass(frozen=True)
class Pretraining:
    """A pretraining (DINO) run whose exported backbone some cells' configs start from."""

    config: str
    export: str
    work_dir: str

    @property
    def name(self) -> str:
        return f'{osp.splitext(osp.basename(self.config))[0]} (pretraining)'


@dataclass
class Study:
    """A study spec, expanded: its pretrainings and its runs in spec order (cells, then grid;
    seeds innermost)."""

    name: str
    work_root: str
    runs: List[StudyRun]
    pretraining: List[Pretraining] = field(default_factory=list)


def _grid_cells(grid: dict, spec_path: str,
                keys: Sequence[str] = ('table', 'row', 'column', 'config')) -> List[dict]:
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
            cells.append({key: grid[key].format(**fields) for key in keys})
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
    pretraining = []
    if spec.get('pretraining'):
        items = spec.pretraining
        if isinstance(items, dict):  # a grid
            items = _grid_cells(items, spec_path, keys=('config', 'export'))
        for item in items:
            if not osp.isfile(item['config']):
                raise ValueError(f'{spec_path}: pretraining config "{item["config"]}" not '
                                 'found.')
            stem = osp.splitext(osp.basename(item['config']))[0]
            pretraining.append(Pretraining(item['config'], item['export'],
                                           osp.join(work_root, 'pretraining', stem)))
    return Study(name, work_root, runs, pretraining)


Job = Union[StudyRun, Pretraining]


def _has_checkpoint(work_dir: str) -> bool:
    return osp.isdir(work_dir) and any(name.endswith('.pth') for name in os.listdir(work_dir))


def run_status(job: Job) -> str:
    """``'done'`` (test metrics written; for a pretraining, its export), ``'started'`` (a
    record or checkpoint) or ``'todo'``."""
    if isinstance(job, Pretraining):
        if osp.isfile(job.export):
            return 'done'
        return 'started' if _has_checkpoint(job.work_dir) else 'todo'
    if osp.isfile(osp.join(job.work_dir, 'metrics', 'test_latest.json')):
        return 'done'
    if _has_checkpoint(job.work_dir) or osp.isfile(osp.join(job.work_dir, RUN_RECORD)):
        return 'started'
    return 'todo'


@functools.cache
def _config_facts(config: str) -> Tuple[bool, Optional[str]]:
    """Whether a config is a k-NN evaluation (its test loop is a ``KNNTestLoop``: nothing
    trains), and its ``monitor``; read once per config (its seeds share it)."""
    cfg = Config.fromfile(config)
    test_cfg = cfg.get('test_cfg') or {}
    knn = is_registered_subclass(LOOPS, test_cfg.get('type'), KNNTestLoop,
                                 cfg.get('default_scope', 'medtrans'))
    return knn, cfg.get('monitor')


def _best_checkpoint(work_dir: str) -> str:
    return f'"$(ls -t {work_dir}/best_*.pth | head -n 1)"'


def _train_command(config: str, work_dir: str, options: str, launcher: str, gpus: int,
                   partition: Optional[str], python: str, job: str) -> str:
    """The training command of a config, resumed when its work dir holds a checkpoint."""
    args = f'--work-dir {work_dir}{options}' + (' --resume' if _has_checkpoint(work_dir) else '')
    if launcher == 'none':
        return f'{python} tools/train.py {config} {args}'
    if launcher == 'pytorch':
        return f'bash tools/dist_train.sh {config} {gpus} {args}'
    if launcher == 'slurm':
        if not partition:
            raise ValueError("run_commands: launcher 'slurm' needs a partition.")
        return (f'GPUS={gpus} GPUS_PER_NODE={min(gpus, 8)} PYTHON={python} '
                f'bash tools/slurm_train.sh {partition} {job} {config} {args}')
    raise ValueError(f"run_commands: launcher must be 'none', 'pytorch' or 'slurm', got "
                     f'{launcher!r}.')


def run_commands(job: Job, launcher: str = 'none', gpus: int = 1,
                 partition: Optional[str] = None, python: str = 'python') -> List[str]:
    """The shell commands of one job, to run in order from the repository root.

    A run trains (resumed if it has a checkpoint) and tests its best checkpoint, or, for a
    k-NN config, is evaluated; a pretraining trains and exports its teacher's backbone.

    Args:
        job (StudyRun | Pretraining): The job.
        launcher (str): ``'none'`` (one process), ``'pytorch'`` (``tools/dist_*.sh`` with
            ``gpus`` processes, torchrun) or ``'slurm'`` (``tools/slurm_train.sh`` on
            ``partition``; tests and exports by ``srun`` on one GPU / ``python``). Defaults to
            ``'none'``.
        gpus (int): Processes for ``'pytorch'``, total GPUs for ``'slurm'`` (at most 8 per
            node). The cells' configs are one-GPU recipes: on ``gpus > 1`` their batch is
            ``gpus`` times theirs and the LR follows linearly (``--auto-scale-lr``). Defaults
            to 1.
        partition (str, optional): Slurm partition. Required for ``'slurm'``.
        python (str): Python executable. Defaults to ``'python'``.
    """
    stem = osp.splitext(osp.basename(job.config))[0][:40]
    if isinstance(job, Pretraining):
        return [_train_command(job.config, job.work_dir, '', launcher, gpus, partition, python,
                               stem),
                f'{python} tools/misc/export_backbone.py {job.work_dir} {job.export}']
    work = f'--work-dir {job.work_dir}'
    if _config_facts(job.config)[0]:
        return [f'{python} tools/knn_eval.py {job.config} {work}']
    # The cells' configs are one-GPU recipes: on more GPUs the batch grows, and the LR with it.
    scale = ' --auto-scale-lr' if gpus > 1 and launcher != 'none' else ''
    train = _train_command(job.config, job.work_dir,
                           f'{scale} --cfg-options randomness.seed={job.seed}', launcher, gpus,
                           partition, python, f'{stem}-s{job.seed}')
    best = _best_checkpoint(job.work_dir)
    # The per-image record (class probabilities, or pixel counts) beside the test metrics.
    out = f' --out {job.work_dir}/predictions.csv'
    if launcher == 'pytorch':
        test = f'bash tools/dist_test.sh {job.config} {best} {gpus} {work}{out}'
    elif launcher == 'slurm':
        test = (f'srun -p {partition} --job-name={stem}-s{job.seed}-test --gres=gpu:1 '
                f'--ntasks=1 {python} -u tools/test.py {job.config} {best} {work}{out} '
                '--launcher slurm')
    else:
        test = f'{python} tools/test.py {job.config} {best} {work}{out}'
    return [train, test]


@functools.cache
def _git_commit() -> Optional[str]:
    try:
        out = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                             cwd=osp.dirname(osp.abspath(__file__)), timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


@functools.cache
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
    record = dict(asdict(run), metric=_config_facts(run.config)[1],
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
        dict[str, int]: Jobs (pretrainings and runs) by status at the end (``done``,
        ``started``, ``todo``).

    Raises:
        RuntimeError: A command failed; the message names it and its log.
    """
    execute = execute or _shell
    jobs: List[Job] = [*study.pretraining, *study.runs]
    todo = [job for job in jobs if run_status(job) != 'done']
    done_before = len(jobs) - len(todo)
    print_fn(f'study {study.name}: {len(study.runs)} runs'
             + (f' after {len(study.pretraining)} pretrainings' if study.pretraining else '')
             + f', {done_before} done, {len(todo)} to run (work root {study.work_root})')
    durations: List[float] = []
    for index, job in enumerate(todo):
        status = run_status(job)
        commands = run_commands(job, python=python)
        where = (f'{job.table} | {job.row} | {job.column}' if isinstance(job, StudyRun)
                 else f'-> {job.export}')
        if dry_run:
            print_fn(f'[{status}] {job.name} {where}: ' + ' && '.join(commands))
            continue
        eta = (f', ETA {_duration(sum(durations) / len(durations) * (len(todo) - index))}'
               if durations else '')
        print_fn(f'[{done_before + index + 1}/{len(jobs)}] {job.name} ({status}) {where}: '
                 f'{len(todo) - index - 1} left after this{eta}')
        start = time.monotonic()
        if isinstance(job, StudyRun):
            write_run_record(job)
        os.makedirs(job.work_dir, exist_ok=True)
        log = osp.join(job.work_dir, 'study.log')
        for command in commands:
            if execute(command, log) != 0:
                raise RuntimeError(f'study {study.name}: "{command}" failed; see {log}. '
                                   'Run the study again to resume it.')
        durations.append(time.monotonic() - start)
    counts = {'done': 0, 'started': 0, 'todo': 0}
    for job in jobs:
        counts[run_status(job)] += 1
    return counts


def _shell(command: str, log_file: str) -> int:
    with open(log_file, 'a') as log:
        log.write(f'$ {command}\n')
        log.flush()
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        return subprocess.run(command, shell=True, stdout=log, stderr=subprocess.STDOUT,
                              env=env).returncode


def cluster_script(study: Study, launcher: str, gpus: int = 1,
                   partition: Optional[str] = None, python: str = 'python',
                   record: bool = True) -> str:
    """A bash script of the commands of every run not done, for a cluster (``'pytorch'`` or
    ``'slurm'``), one run after another; with ``record``, each run's record is written now."""
    lines = ['#!/usr/bin/env bash', f'# study {study.name}: generated by tools/run_study.py',
             'set -euo pipefail']
    for job in [*study.pretraining, *study.runs]:
        if run_status(job) == 'done':
            continue
        if isinstance(job, StudyRun):
            if record:
                write_run_record(job)
            lines.append(f'# {job.table} | {job.row} | {job.column} | seed {job.seed}')
        else:
            lines.append(f'# pretraining -> {job.export}')
        lines.extend(run_commands(job, launcher, gpus, partition, python))
    return '\n'.join(lines) + '\n'
