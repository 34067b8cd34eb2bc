"""Study specs: the cells of result tables, each a config run with some seeds.

A study spec is a Python config file (``configs/studies/``)::

    work_root = 'work_dirs/studies/table1'      # default: work_dirs/studies/<spec name>
    seeds = [0, 1, 2, 3, 4]
    # explicit cells (extra keys name the cell's axes, e.g. dataset='isic2018') ...
    cells = [dict(table='Table 2', row='DeepLabV3 DeiT-S', column='ISIC2018',
                  config='configs/deeplab3_deit_s_isic2018.py', dataset='isic2018')]
    # ... and/or a grid: every combination of the named values fills the templates
    grid = dict(table='Table 1', row='{init} {model}', column='{dataset}',
                config='configs/classification/{m}/{m}_{i}_1xb64_plateau_{d}-224.py',
                values=dict(model=dict(ResNet50=dict(m='resnet50')), ...))
    # seeds of some cells, by an axis value (Table 3: five random initialisations)
    seeds_by = dict(init={'random': [0, 1, 2, 3, 4]})

Runs that start from a self-supervised pretraining (the ImageNet+DINO rows) read the backbone
that a ``pretraining`` exports: a list of ``dict(config, export)`` or a grid of them (``config``:
the DINO config, ``export``: the file the cells' configs read as ``pretrained``).

A cell's *axes* are the grid's (``init``, ``model``, ``dataset``...) or an explicit cell's extra
keys; each axis value is known by its display name and its template fields (``'DeiT-S'`` and
``'deit-s'``), which ``--only`` and ``--data-root`` match without regard to case.
"""
import itertools
import os.path as osp
from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from mmengine.config import Config

__all__ = ['StudyRun', 'Pretraining', 'Study', 'load_study', 'select_runs', 'parse_only']

#: An axis and the names its value goes by: display name first, then its template fields.
Axes = Tuple[Tuple[str, Tuple[str, ...]], ...]
_CELL_KEYS = ('table', 'row', 'column', 'config')


def _matches(axes: Axes, axis: str, names: Iterable[str]) -> bool:
    wanted = {name.lower() for name in names}
    return any(key == axis and wanted & {value.lower() for value in values}
               for key, values in axes)


def _axis_names(axes: Axes, axis: str) -> Tuple[str, ...]:
    return next((values for key, values in axes if key == axis), ())


class _OnAxes:
    """What runs and pretrainings share: a config, its stem and the axis values it was made of
    (``axes``), by which ``--only`` selects."""

    @property
    def stem(self) -> str:
        return osp.splitext(osp.basename(self.config))[0]

    def matches(self, axis: str, names: Iterable[str]) -> bool:
        """Whether the item's value of ``axis`` goes by one of ``names`` (any case)."""
        return _matches(self.axes, axis, names)

    def axis_names(self, axis: str) -> Tuple[str, ...]:
        return _axis_names(self.axes, axis)


@dataclass(frozen=True)
class StudyRun(_OnAxes):
    """One run of a study: a cell's config with one seed."""

    table: str
    row: str
    column: str
    config: str
    seed: int
    work_dir: str
    axes: Axes = ()

    @property
    def name(self) -> str:
        """Unique in a study, and its work dir below the work root."""
        return f'{self.stem}/seed{self.seed}'


@dataclass(frozen=True)
class Pretraining(_OnAxes):
    """A pretraining (DINO) run whose exported backbone some cells' configs start from."""

    config: str
    export: str
    work_dir: str
    axes: Axes = ()

    @property
    def name(self) -> str:
        return f'pretraining/{self.stem}'


@dataclass
class Study:
    """A study spec, expanded: its pretrainings and its runs in spec order (cells, then grid;
    seeds innermost)."""

    name: str
    work_root: str
    runs: List[StudyRun]
    pretraining: List[Pretraining] = field(default_factory=list)


def _grid_cells(grid: dict, spec_path: str, keys: Sequence[str] = _CELL_KEYS) -> List[dict]:
    """Every combination of ``grid.values``, its templates filled; each with its ``axes``."""
    values = grid.get('values')
    if not isinstance(values, dict) or not values:
        raise ValueError(f'{spec_path}: grid.values must map each axis (e.g. model) to a dict '
                         'of {display name: {template field: value}}.')
    cells = []
    axes = list(values)
    for choice in itertools.product(*(list(values[axis].items()) for axis in axes)):
        fields, cell_axes = {}, []
        for axis, (display, extra) in zip(axes, choice):
            fields[axis] = display
            fields.update(extra or {})
            cell_axes.append((axis, (display, *(str(v) for v in (extra or {}).values()))))
        try:
            cell = {key: grid[key].format(**fields) for key in keys}
        except KeyError as err:
            raise ValueError(f'{spec_path}: grid template field {err} is not given by '
                             f'grid.values (axes: {axes}).') from err
        cells.append(dict(cell, axes=tuple(cell_axes)))
    return cells


def _explicit_axes(cell: dict, known: Sequence[str]) -> Axes:
    return tuple((key, (str(value), )) for key, value in cell.items() if key not in known)


def _seeds(values, where: str) -> List[int]:
    seeds = list(values or [])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f'{where}: seeds must be a non-empty list of ints, got {values!r}.')
    return seeds


def _cell_seeds(spec: Config, cell: dict, spec_path: str) -> List[int]:
    """A cell's own ``seeds``, else the first of ``seeds_by`` its axes match, else the spec's."""
    if cell.get('seeds') is not None:
        return _seeds(cell['seeds'], f'{spec_path}: cell {cell["row"]} / {cell["column"]}')
    for axis, by_value in (spec.get('seeds_by') or {}).items():
        for value, seeds in by_value.items():
            if _matches(cell['axes'], axis, [value]):
                return _seeds(seeds, f'{spec_path}: seeds_by.{axis}.{value}')
    return _seeds(spec.get('seeds'), spec_path)


def load_study(spec_path: str, work_root: Optional[str] = None) -> Study:
    """Read a study spec and expand it into runs.

    Args:
        spec_path (str): The spec file.
        work_root (str, optional): Overrides the spec's ``work_root``. Defaults to None.

    Raises:
        ValueError: No cells, no seeds, a cell without its fields, a config file that does
            not exist, or two cells with one config.
    """
    spec = Config.fromfile(spec_path)
    name = osp.splitext(osp.basename(spec_path))[0]
    work_root = work_root or spec.get('work_root') or osp.join('work_dirs', 'studies', name)
    cells = []
    for cell in spec.get('cells') or []:
        cell = dict(cell)
        cells.append(dict(cell, axes=_explicit_axes(cell, _CELL_KEYS + ('seeds', ))))
    if spec.get('grid'):
        cells += _grid_cells(spec.grid, spec_path)
    if not cells:
        raise ValueError(f'{spec_path}: no cells; give cells=[dict(table, row, column, config)] '
                         'or a grid.')
    runs, seen = [], {}
    for cell in cells:
        missing = [key for key in _CELL_KEYS if not cell.get(key)]
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
        for seed in _cell_seeds(spec, cell, spec_path):
            runs.append(StudyRun(cell['table'], cell['row'], cell['column'], cell['config'],
                                 seed, osp.join(work_root, stem, f'seed{seed}'), cell['axes']))
    pretraining = []
    if spec.get('pretraining'):
        items = spec.pretraining
        if isinstance(items, dict):  # a grid
            items = _grid_cells(items, spec_path, keys=('config', 'export'))
        else:
            items = [dict(item, axes=_explicit_axes(item, ('config', 'export')))
                     for item in items]
        for item in items:
            if not osp.isfile(item['config']):
                raise ValueError(f'{spec_path}: pretraining config "{item["config"]}" not '
                                 'found.')
            stem = osp.splitext(osp.basename(item['config']))[0]
            pretraining.append(Pretraining(item['config'], item['export'],
                                           osp.join(work_root, 'pretraining', stem),
                                           item['axes']))
    return Study(name, work_root, runs, pretraining)


def parse_only(items: Sequence[str]) -> Dict[str, List[str]]:
    """``--only KEY=V1[,V2]`` options as ``{key: [values]}`` (a key given twice: its values
    joined).

    Raises:
        ValueError: An item without ``=`` or without values.
    """
    only: Dict[str, List[str]] = {}
    for item in items:
        key, sep, values = item.partition('=')
        names = [value.strip() for value in values.split(',') if value.strip()]
        if not sep or not key.strip() or not names:
            raise ValueError(f'--only {item}: expected KEY=V1[,V2...] (e.g. dataset=aptos2019, '
                             'seed=0,1).')
        only.setdefault(key.strip(), []).extend(names)
    return only


def select_runs(study: Study, only: Mapping[str, Sequence[str]]) -> Study:
    """The study with only the runs that every filter admits (``seed``, or an axis: one of its
    values by any of its names, any case); the pretrainings stay (the plan keeps those that
    a kept run reads).

    Raises:
        ValueError: A key that is neither ``seed`` nor an axis of the study, a seed that is not
            an int, or a value that no run of the study has (likely a typo).
    """
    runs = study.runs
    for key, values in only.items():
        if key == 'seed':
            try:
                seeds = {int(value) for value in values}
            except ValueError as err:
                raise ValueError(f'--only seed={",".join(values)}: seeds are ints.') from err
            unknown = seeds - {run.seed for run in study.runs}
            if unknown:
                raise ValueError(f'--only seed: the study has no seed {sorted(unknown)} (its '
                                 f'seeds: {sorted({run.seed for run in study.runs})}).')
            runs = [run for run in runs if run.seed in seeds]
            continue
        known = {axis for run in study.runs for axis, _ in run.axes}
        if key not in known:
            raise ValueError(f'--only {key}=...: the study {study.name} has no axis "{key}" '
                             f'(its axes: {", ".join(sorted(known | {"seed"}))}).')
        for value in values:
            if not any(run.matches(key, [value]) for run in study.runs):
                names = sorted({name for run in study.runs for name in run.axis_names(key)})
                raise ValueError(f'--only {key}={value}: no run of {study.name} has it (its '
                                 f'{key} values: {", ".join(names)}).')
        runs = [run for run in runs if run.matches(key, values)]
    return replace(study, runs=runs)
