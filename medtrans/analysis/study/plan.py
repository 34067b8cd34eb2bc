"""A study's plan: its jobs as data (what runs, on how many GPUs, at which batch and LR, after
which other jobs, by which commands), before anything runs.

A job is a pretraining (DINO: train, then export the teacher's backbone) or a cell run (train,
then test the best checkpoint; a k-NN config is evaluated instead). Each job runs its config's
recipe (:mod:`.recipe`) with the options of the study's command line:

* ``data_roots``: a dataset folder per dataset name, for the jobs whose ``dataset`` axis goes by
  that name (``--data-root`` of the tools, which sets every dataloader);
* ``weights_dir``: the folder of the weight files the configs name (``pretrained``), other than
  the exports of the study's pretrainings (``--pretrained <weights_dir>/<file name>``);
* ``cfg_options``: ``key=value`` overrides for every run; those the study sets itself (the seed,
  the batch, accumulation, LR scaling) are refused;
* ``smoke``: every job for a few iterations on a few small images (:data:`SMOKE`), its exports
  in the work root, so that the whole study is checked in minutes.

:func:`build_plan` makes the plan; :meth:`Plan.to_json` is the JSON that ``run_study.py --plan``
writes, and the jobs' ``steps`` are what a backend (:mod:`.local`, :mod:`.scripts`) runs.
"""
import argparse
import copy
import functools
import os.path as osp
import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from mmengine.config import Config, DictAction

from medtrans.apis import check_overrides
from medtrans.apis.retarget import INPUT_SIZES, img_size_fits
from medtrans.engine import KNNTestLoop
from medtrans.registry import LOOPS, is_registered_subclass

from .recipe import Placement, Recipe, accepts_accumulation, place_recipe, read_recipe
from .record import (
    PRETRAINING_RECORD,
    RUN_RECORD,
    has_checkpoint,
    read_record,
    test_metrics_path,
)
from .spec import Pretraining, Study, StudyRun, select_runs

__all__ = ['SMOKE', 'Step', 'Job', 'Plan', 'build_plan', 'job_status', 'BEST_CHECKPOINT']

#: The smoke mode: iterations (cells) / one epoch of ``train_images`` (pretrainings), a batch of
#: ``batch`` per process, the first ``train_images`` / ``eval_images`` of each split, and
#: inputs of ``img_size`` (or the least the model takes: Inception-v3's 75 pixels for the
#: smallest crop).
SMOKE = dict(iters=4, batch=4, train_images=16, eval_images=16, img_size=64)
#: The keys the study sets in every run; ``--cfg-options`` may not set them.
STUDY_KEYS = ('randomness.seed', 'train_dataloader.batch_size',
              'optim_wrapper.accumulative_counts', 'auto_scale_lr')
#: A test step's checkpoint: the run's best, found when the step starts.
BEST_CHECKPOINT = '<best>'
#: A smoke test step's checkpoint: the best, else the newest (a few validation images may give
#: an undefined metric, and then no best).
BEST_OR_LAST_CHECKPOINT = '<best-or-last>'


@dataclass(frozen=True)
class Step:
    """One command of a job: a tool of this repository with its arguments, in ``processes``
    processes (one per GPU; torchrun for more than one)."""

    tool: str
    args: Tuple[str, ...]
    processes: int = 1

    def command(self, python: str = 'python') -> str:
        """The shell command that runs the step here, from the repository root (torchrun
        through ``tools/dist_train.sh`` / ``dist_test.sh``, which read ``PORT``)."""
        args = self.words()
        if self.processes > 1 and self.tool == 'tools/train.py':
            return ' '.join(['bash tools/dist_train.sh', args[0], str(self.processes), *args[1:]])
        if self.processes > 1 and self.tool == 'tools/test.py':
            return ' '.join(['bash tools/dist_test.sh', *args[:2], str(self.processes),
                             *args[2:]])
        if self.processes > 1:
            return ' '.join([python, '-m torch.distributed.run',
                             f'--nproc_per_node={self.processes}', '--master_port=${PORT:-29500}',
                             self.tool, *args, '--launcher pytorch'])
        return ' '.join([python, self.tool, *args])

    def words(self) -> List[str]:
        """The arguments as shell words (:data:`BEST_CHECKPOINT`: the newest ``best_*.pth`` of
        the step's work dir)."""
        words = []
        for arg in self.args:
            if arg in (BEST_CHECKPOINT, BEST_OR_LAST_CHECKPOINT):
                work_dir = shlex.quote(self.args[self.args.index('--work-dir') + 1])
                best = f'ls -t {work_dir}/best_*.pth'
                if arg == BEST_OR_LAST_CHECKPOINT:  # a space keeps "$( (" from being "$(("
                    best = f' ( {best} 2>/dev/null || ls -t {work_dir}/*.pth )'
                words.append(f'"$({best} | head -n 1)"')
            else:
                words.append(shlex.quote(arg))
        return words


@dataclass
class Job:
    """A job of the plan (module docstring). ``gpus`` 0 is one CPU process."""

    name: str
    kind: str  # 'pretraining' or 'cell'
    config: str
    seed: Optional[int]
    gpus: int
    batch_per_gpu: int
    accumulate: int
    total_batch: int
    lr: Optional[float]
    after: List[str]
    work_dir: str
    status: str
    steps: List[Step]
    run: Optional[StudyRun] = None
    pretraining: Optional[Pretraining] = None
    export: Optional[str] = None
    record: dict = field(default_factory=dict)

    @property
    def processes(self) -> int:
        return max(self.gpus, 1)

    @property
    def record_path(self) -> str:
        return osp.join(self.work_dir, RUN_RECORD if self.kind == 'cell' else PRETRAINING_RECORD)

    @property
    def where(self) -> str:
        """Its table cell, or its export."""
        if self.run is not None:
            return f'{self.run.table} | {self.run.row} | {self.run.column}'
        return f'-> {self.export}'

    def commands(self, python: str = 'python') -> List[str]:
        return [step.command(python) for step in self.steps]

    def to_json(self, python: str = 'python') -> dict:
        data = dict(name=self.name, kind=self.kind, config=self.config, seed=self.seed,
                    gpus=self.gpus, batch_per_gpu=self.batch_per_gpu, accumulate=self.accumulate,
                    total_batch=self.total_batch, lr=self.lr, after=list(self.after),
                    work_dir=self.work_dir, status=self.status)
        if self.run is not None:
            data.update(table=self.run.table, row=self.run.row, column=self.run.column)
        else:
            data.update(export=self.export)
        data['commands'] = self.commands(python)
        return data


@dataclass
class Plan:
    """The jobs of a study in the order they may start (pretrainings first)."""

    study: Study
    jobs: List[Job]
    gpus: Optional[int]
    smoke: bool = False

    def job(self, name: str) -> Job:
        return next(job for job in self.jobs if job.name == name)

    def to_json(self, python: str = 'python') -> dict:
        return dict(study=self.study.name, work_root=self.study.work_root, gpus=self.gpus,
                    smoke=self.smoke, jobs=[job.to_json(python) for job in self.jobs])

    def describe(self, python: str = 'python') -> List[str]:
        """The plan as lines for people: per job its fields and its commands."""
        lines = [f'study {self.study.name}: {len(self.jobs)} jobs'
                 + (' (smoke)' if self.smoke else '') + f', work root {self.study.work_root}']
        for job in self.jobs:
            where = 'CPU' if job.gpus == 0 else f'{job.gpus} GPU' + ('s' if job.gpus > 1 else '')
            lr = 'lr -' if job.lr is None else f'lr {job.lr:g}'
            seed = '' if job.seed is None or job.kind == 'pretraining' else f' seed {job.seed}'
            lines.append(f'[{job.status}] {job.name} ({job.kind}{seed}) {job.where}: {where}, '
                         f'batch {job.processes}x{job.batch_per_gpu}x{job.accumulate} = '
                         f'{job.total_batch}, {lr}'
                         + (f', after {", ".join(job.after)}' if job.after else ''))
            lines.extend(f'    {command}' for command in job.commands(python))
        return lines


@functools.cache
def _file_config(path: str) -> Config:
    return Config.fromfile(path)


@functools.cache
def _accepts_accumulation(path: str) -> bool:
    return accepts_accumulation(_file_config(path), path)


def _is_knn(cfg: Config) -> bool:
    test_cfg = cfg.get('test_cfg') or {}
    return is_registered_subclass(LOOPS, test_cfg.get('type'), KNNTestLoop,
                                  cfg.get('default_scope', 'medtrans'))


def _pretrained(cfg: Config) -> Optional[str]:
    """The weight file a config's backbone starts from (``pretrained``, or an OpenMMLab
    ``init_cfg`` of type ``Pretrained``), as :func:`medtrans.apis.retarget` finds it."""
    backbone = (cfg.get('model') or {}).get('backbone') or {}
    if backbone.get('pretrained'):
        return backbone['pretrained']
    init_cfg = backbone.get('init_cfg')
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        return init_cfg.get('checkpoint')
    return None


def _lr(cfg: Config) -> Optional[float]:
    return ((cfg.get('optim_wrapper') or {}).get('optimizer') or {}).get('lr')


def _parse_options(options: Sequence[str]) -> dict:
    """``key=value`` strings as MMEngine's ``--cfg-options`` reads them."""
    if not options:
        return {}
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--options', nargs='+', action=DictAction)
    return parser.parse_args(['--options', *options]).options


@functools.cache
def smoke_img_size(cfg: Config) -> Optional[int]:
    """The input size of a smoke run: the least from :data:`SMOKE` ``img_size`` up that
    ``--img-size`` accepts for the config (:func:`~medtrans.apis.retarget.img_size_fits`:
    every crop rounded to what the backbone takes, e.g. DINO's local crops to DeiT's patch;
    Inception-v3 takes 75 pixels at least). None when no size below the config's own fits."""
    primary = next((cfg[name] for name in INPUT_SIZES
                    if isinstance(cfg.get(name), (int, list, tuple))), None)
    if primary is None:
        return None
    primary = primary if isinstance(primary, int) else primary[0]
    return next((size for size in range(SMOKE['img_size'], primary)
                 if img_size_fits(cfg, size)), None)


def _innermost_dataset(loader: dict, name: str) -> str:
    key, dataset = f'{name}.dataset', loader.get('dataset') or {}
    while isinstance(dataset.get('dataset'), dict):  # a dataset wrapper
        key, dataset = f'{key}.dataset', dataset['dataset']
    return key


def smoke_options(cfg: Config, test_only: bool = False) -> List[str]:
    """``--cfg-options`` of a smoke run: a few iterations (or one short epoch), a small batch,
    the first images of each split, logs every iteration, validation at the end."""
    options = []
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if not isinstance(loader, dict) or not isinstance(loader.get('dataset'), dict):
            continue
        images = SMOKE['train_images'] if name == 'train_dataloader' else SMOKE['eval_images']
        options.append(f'{_innermost_dataset(loader, name)}.indices={images}')
        if name != 'train_dataloader':
            options.append(f'{name}.batch_size={SMOKE["batch"]}')
    if test_only:
        return options
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_iters' in train_cfg:
        options.append(f'train_cfg.max_iters={SMOKE["iters"]}')
        if 'val_interval' in train_cfg:
            options.append(f'train_cfg.val_interval={SMOKE["iters"]}')
    if 'max_epochs' in train_cfg:
        options.append('train_cfg.max_epochs=1')
        options.extend(f'train_cfg.{key}=1' for key in ('val_begin', 'val_interval')
                       if key in train_cfg)
    hooks = cfg.get('default_hooks') or {}
    if isinstance(hooks.get('checkpoint'), dict) and 'interval' in hooks['checkpoint']:
        options.append(f'default_hooks.checkpoint.interval={SMOKE["iters"]}')
    if isinstance(hooks.get('logger'), dict):
        options.append('default_hooks.logger.interval=1')
    return options


def job_status(kind: str, work_dir: str, export: Optional[str], smoke: bool) -> str:
    """``'done'`` (a cell's test metrics; a pretraining's export), ``'started'`` (a record or a
    checkpoint) or ``'todo'``.

    Raises:
        ValueError: The work dir holds a smoke run and this is not one, or the reverse: their
            results must not be taken for each other.
    """
    record = read_record(osp.join(work_dir, RUN_RECORD if kind == 'cell' else PRETRAINING_RECORD))
    if record is not None and bool(record.get('smoke', False)) != smoke:
        this, that = ('a smoke run', 'a full run') if smoke else ('a full run', 'a smoke run')
        raise ValueError(f'{work_dir} holds {that}; {this} must not take its results. Choose '
                         'another --work-root.')
    if kind == 'pretraining':
        done = osp.isfile(export)
    else:
        done = osp.isfile(test_metrics_path(work_dir))
    if done:
        return 'done'
    return 'started' if has_checkpoint(work_dir) or record is not None else 'todo'


def _refuse_study_keys(options: Mapping[str, object], auto_scale_lr: bool) -> None:
    for key in options:
        for owned in STUDY_KEYS:
            if key == owned or key.startswith(owned + '.'):
                if key == 'train_dataloader.batch_size' and auto_scale_lr:
                    continue
                raise ValueError(
                    f'--cfg-options {key}=...: the study sets it in every run (the seed; the '
                    "recipe's batch, accumulation and LR, which stay the config's on any "
                    'hardware). To change the batch of every run on purpose, give '
                    'train_dataloader.batch_size with --auto-scale-lr (the LR then scales '
                    'linearly).')


@dataclass
class _Options:
    gpus: Optional[int]
    smoke: bool
    data_roots: Mapping[str, str]
    weights_dir: Optional[str]
    cfg_options: Tuple[str, ...]
    parsed_options: dict
    auto_scale_lr: bool
    exports: Dict[str, Pretraining]  # a pretraining's export as configs name it
    export_paths: Dict[str, str]  # pretraining name -> where this plan writes its export


def _data_root(item: Union[StudyRun, Pretraining], opts: _Options) -> Optional[str]:
    return next((root for name, root in opts.data_roots.items()
                 if item.matches('dataset', [name])), None)


def _recipe_and_placement(cfg: Config, path: str, opts: _Options,
                          knn: bool) -> Tuple[Recipe, Placement, Optional[float]]:
    recipe = read_recipe(cfg, path)
    check_overrides(cfg, opts.parsed_options)  # what the tools would refuse, refused now
    run_cfg = copy.deepcopy(cfg)
    run_cfg.merge_from_dict(opts.parsed_options)
    if opts.auto_scale_lr and 'train_dataloader.batch_size' in opts.parsed_options:
        recipe = Recipe(recipe.gpus, int(opts.parsed_options['train_dataloader.batch_size']),
                        recipe.accumulate)
    if knn:
        placed = place_recipe(Recipe(recipe.gpus, recipe.batch_per_gpu), opts.gpus)
        batch = SMOKE['batch'] if opts.smoke else recipe.batch_per_gpu
        return recipe, Placement(placed.gpus, batch, 1), None
    placement = place_recipe(recipe, opts.gpus, _accepts_accumulation(path))
    if opts.smoke:
        placement = Placement(placement.gpus, SMOKE['batch'], 1)
    lr = _lr(run_cfg)
    scale = run_cfg.get('auto_scale_lr') or {}
    if lr is not None and scale.get('base_batch_size') and (scale.get('enable')
                                                            or opts.auto_scale_lr):
        lr = lr * placement.total_batch / scale['base_batch_size']
    return recipe, placement, lr


def _train_args(cfg: Config, config: str, work_dir: str, recipe: Recipe, placement: Placement,
                retargets: List[str], options: List[str], opts: _Options) -> Tuple[str, ...]:
    args = [config, '--work-dir', work_dir, '--resume', *retargets]
    if placement.accumulate != recipe.accumulate:
        args += ['--accumulate', str(placement.accumulate)]
    if opts.auto_scale_lr:
        args.append('--auto-scale-lr')
    batch = opts.parsed_options.get('train_dataloader.batch_size',
                                    (cfg.get('train_dataloader') or {}).get('batch_size'))
    if placement.batch_per_gpu != batch:
        options = [f'train_dataloader.batch_size={placement.batch_per_gpu}', *options]
    return tuple(args + (['--cfg-options', *options] if options else []))


def _retargets(item: Union[StudyRun, Pretraining], cfg: Config, opts: _Options
               ) -> Tuple[List[str], dict, List[str]]:
    """The retargeting flags of a job, what they set (for its record), and the pretrainings it
    waits for."""
    flags, chosen, after = [], {}, []
    data_root = _data_root(item, opts)
    if data_root is not None:
        flags += ['--data-root', data_root]
        chosen['data_root'] = data_root
    pretrained = _pretrained(cfg)
    source = opts.exports.get(osp.normpath(pretrained)) if pretrained else None
    if source is not None:
        after.append(source.name)
        target = opts.export_paths[source.name]
        if osp.normpath(target) != osp.normpath(pretrained):
            flags += ['--pretrained', target]
        chosen['pretrained'] = target
    elif pretrained and opts.weights_dir:
        chosen['pretrained'] = osp.join(opts.weights_dir, osp.basename(pretrained))
        flags += ['--pretrained', chosen['pretrained']]
    elif pretrained:
        chosen['pretrained'] = pretrained
    if opts.smoke:
        size = smoke_img_size(cfg)
        if size is not None:
            flags += ['--img-size', str(size)]
            chosen['img_size'] = size
    return flags, chosen, after


def _recipe_fields(placement: Placement, lr: Optional[float]) -> dict:
    return dict(gpus=placement.gpus, batch_per_gpu=placement.batch_per_gpu,
                accumulate=placement.accumulate, total_batch=placement.total_batch, lr=lr)


def _pretraining_job(item: Pretraining, opts: _Options) -> Job:
    cfg = _file_config(item.config)
    recipe, placement, lr = _recipe_and_placement(cfg, item.config, opts, knn=False)
    flags, chosen, after = _retargets(item, cfg, opts)
    options = list(opts.cfg_options) + (smoke_options(cfg) if opts.smoke else [])
    export = opts.export_paths[item.name]
    steps = [
        Step('tools/train.py', _train_args(cfg, item.config, item.work_dir, recipe, placement,
                                           flags, options, opts), placement.processes),
        Step('tools/misc/export_backbone.py', (item.work_dir, export)),
    ]
    fields = _recipe_fields(placement, lr)
    record = dict(config=item.config, export=export, work_dir=item.work_dir, **fields,
                  smoke=opts.smoke, cfg_options=list(opts.cfg_options), **chosen)
    return Job(item.name, 'pretraining', item.config, (cfg.get('randomness') or {}).get('seed'),
               **fields, after=after, work_dir=item.work_dir,
               status=job_status('pretraining', item.work_dir, export, opts.smoke), steps=steps,
               pretraining=item, export=export, record=record)


def _cell_job(run: StudyRun, opts: _Options) -> Job:
    cfg = _file_config(run.config)
    knn = _is_knn(cfg)
    recipe, placement, lr = _recipe_and_placement(cfg, run.config, opts, knn)
    flags, chosen, after = _retargets(run, cfg, opts)
    user = list(opts.cfg_options)
    out = ['--out', osp.join(run.work_dir, 'predictions.csv')]
    seed = [f'randomness.seed={run.seed}']
    if knn:
        options = seed + user + (smoke_options(cfg, test_only=True) if opts.smoke else [])
        steps = [Step('tools/knn_eval.py', (run.config, '--work-dir', run.work_dir, *out, *flags,
                                            '--cfg-options', *options), placement.processes)]
    else:
        options = seed + user + (smoke_options(cfg) if opts.smoke else [])
        test_options = user + (smoke_options(cfg, test_only=True) if opts.smoke else [])
        checkpoint = BEST_OR_LAST_CHECKPOINT if opts.smoke else BEST_CHECKPOINT
        steps = [
            Step('tools/train.py', _train_args(cfg, run.config, run.work_dir, recipe, placement,
                                               flags, options, opts), placement.processes),
            Step('tools/test.py', (run.config, checkpoint, '--work-dir', run.work_dir, *out,
                                   *flags,
                                   *(['--cfg-options', *test_options] if test_options else [])),
                 placement.processes),
        ]
    fields = _recipe_fields(placement, lr)
    record = dict(table=run.table, row=run.row, column=run.column, config=run.config,
                  seed=run.seed, work_dir=run.work_dir, metric=cfg.get('monitor'), **fields,
                  knn=knn, smoke=opts.smoke, cfg_options=user, **chosen)
    return Job(run.name, 'cell', run.config, run.seed, **fields, after=after,
               work_dir=run.work_dir, status=job_status('cell', run.work_dir, None, opts.smoke),
               steps=steps, run=run, record=record)


def build_plan(study: Study,
               gpus: Optional[int] = None,
               only: Optional[Mapping[str, Sequence[str]]] = None,
               smoke: bool = False,
               data_roots: Optional[Mapping[str, str]] = None,
               weights_dir: Optional[str] = None,
               cfg_options: Sequence[str] = (),
               auto_scale_lr: bool = False) -> Plan:
    """The plan of a study: its selected runs and the pretrainings they read, as jobs.

    Args:
        study (Study): From :func:`~.spec.load_study`.
        gpus (int, optional): GPUs a job may take: this machine's (0: the CPU, each job one
            process), or None for each recipe's own count (a cluster). Defaults to None.
        only (dict, optional): ``--only`` filters (:func:`~.spec.select_runs`); pretrainings
            stay when a kept run reads their export. Defaults to None (every run, every
            pretraining).
        smoke (bool): Smoke runs (:data:`SMOKE`); exports go to ``<work_root>/exports/``.
            Defaults to False.
        data_roots (dict, optional): Dataset name -> folder. Defaults to None.
        weights_dir (str, optional): Folder of the weight files the configs name. Defaults to
            None.
        cfg_options (Sequence[str]): ``key=value`` overrides for every run. Defaults to ().
        auto_scale_lr (bool): The user changes the batch on purpose
            (``train_dataloader.batch_size`` in ``cfg_options``): the LR scales linearly
            (``tools/train.py --auto-scale-lr``). Defaults to False.

    Raises:
        ValueError: A filter or data root that names nothing in the study, an override the
            study owns, a config whose recipe is unclear (:func:`~.recipe.read_recipe`), or a
            work dir of a smoke run planned as a full one (or the reverse).
    """
    selected = select_runs(study, only) if only else study
    parsed = _parse_options(list(cfg_options))
    _refuse_study_keys(parsed, auto_scale_lr)
    data_roots = dict(data_roots or {})
    everything = [*study.runs, *study.pretraining]
    for name in data_roots:
        if not any(item.matches('dataset', [name]) for item in everything):
            names = sorted({n for item in everything for n in item.axis_names('dataset')})
            raise ValueError(f'--data-root {name}=...: no job of {study.name} has the dataset '
                             f'"{name}" (its datasets: {", ".join(names) or "none named"}).')
    export_paths = {
        item.name: (osp.join(study.work_root, 'exports', osp.basename(item.export)) if smoke
                    else item.export) for item in study.pretraining}
    opts = _Options(gpus, smoke, data_roots, weights_dir, tuple(cfg_options), parsed,
                    auto_scale_lr, {osp.normpath(p.export): p for p in study.pretraining},
                    export_paths)
    cells = [_cell_job(run, opts) for run in selected.runs]
    needed = {name for job in cells for name in job.after}
    pretrainings = [_pretraining_job(item, opts) for item in study.pretraining
                    if not only or item.name in needed]
    return Plan(selected, pretrainings + cells, gpus, smoke)
