"""What the tools check before a run is built: the problems a user can fix, found at once.

A Runner reads its data folders, weight files and checkpoints, and builds most registered
types, only when it needs them: a wrong ``--data-root`` or a missing ImageNet file stopped a run
after its whole config had been printed, with a traceback. :func:`check_before_run` looks at
the prepared config first and reports every such problem in one :class:`PreflightError`,
each naming its field or file, what was expected and the option or tool that fixes it.
"""
import glob
import importlib.util
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config

from medtrans.engine.registry_hints import unregistered_types
from medtrans.models.utils import STUDY_TIMM_WEIGHTS, timm_weight_filename

from .retarget import RUN_SECTIONS, data_root_fields, pretrained_field
from .run import VIS_BACKENDS

__all__ = ['PreflightError', 'check_before_run', 'check_checkpoint', 'LOADERS_READ']

#: The dataloaders each tool reads: name -> the loop that reads it, where the config may have
#: none (a run without validation), or None (the k-NN memory, read by the test loop).
LOADERS_READ = {
    'train': dict(train_dataloader='train_cfg', val_dataloader='val_cfg'),
    'test': dict(test_dataloader='test_cfg'),
    'knn': dict(train_dataloader=None, test_dataloader='test_cfg'),
}
_WEIGHTS_TOOL = 'tools/misc/download_timm_weights.py'


class PreflightError(ValueError):
    """The problems that stop a run before it is built, each one a paragraph of the message.

    Args:
        problems (Sequence[str]): What is wrong, each naming its field or file and the fix.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f'{len(self.problems)} problems:\n' + '\n'.join(
                f'- {problem}' for problem in self.problems)
        super().__init__(message)


def _checkpoints_in(folder: str) -> List[str]:
    found = glob.glob(osp.join(folder, '*.pth')) + glob.glob(osp.join(folder, '*.safetensors'))
    return sorted(osp.basename(path) for path in found)


def check_checkpoint(path: str, work_dir: Optional[str] = None) -> None:
    """Refuse a checkpoint path that is not a file, listing the checkpoints that are there.

    The listing is of the path's folder or, if it has none, of the run's work dir.

    Args:
        path (str): The checkpoint given.
        work_dir (str, optional): The run's work dir. Defaults to None.

    Raises:
        PreflightError: ``path`` is not a file.
    """
    if osp.isfile(path):
        return
    problem = f'checkpoint "{path}": no such file.'
    for folder in dict.fromkeys(f for f in (osp.dirname(path) or '.', work_dir) if f):
        present = _checkpoints_in(folder)
        if present:
            best = [name for name in present if name.startswith('best_')]
            listed = ', '.join(best + [name for name in present if name not in best])
            problem += f' Checkpoints in {folder}: {listed}.'
            break
    else:
        problem += ' No checkpoint (*.pth, *.safetensors) in its folder'
        problem += f' or in the work dir {work_dir}.' if work_dir else '.'
    raise PreflightError([problem])


def _data_root_problems(cfg: Config, loaders: Dict[str, Optional[str]]) -> List[str]:
    missing = {}
    for path, dataset, _, root in data_root_fields(cfg):
        read = path[0] in loaders and (loaders[path[0]] is None or cfg.get(loaders[path[0]]))
        if read and isinstance(root, str) and root and not osp.isdir(root):
            missing.setdefault(root, []).append(('.'.join(map(str, path)), dataset.get('type')))
    problems, config = [], cfg.filename or 'CONFIG'
    for root, fields in missing.items():
        kinds = ', '.join(dict.fromkeys(str(kind) for _, kind in fields))
        problems.append(
            f'{" and ".join(field for field, _ in fields)}: no such folder "{root}" (where '
            f'{kinds} expects its official layout, docs/datasets.md). Point the config at your '
            f'copy with --data-root DIR; `python tools/check_dataset.py {config} --data-root '
            'DIR` then checks every file of it.')
    return problems


def _weight_problem(field: str, path: str) -> str:
    name = osp.basename(path)
    timm_name = next((n for n in STUDY_TIMM_WEIGHTS if timm_weight_filename(n) == name), None)
    problem = f'{field}: no such weight file "{path}" (nothing is downloaded at run time). '
    if timm_name is not None:
        problem += (f'These are timm\'s ImageNet weights: save them once on a machine with '
                    f'internet access with `python {_WEIGHTS_TOOL} {osp.dirname(path) or "."} '
                    f'--models {timm_name}` (all of the study\'s: without --models) and copy '
                    'the folder here. ')
    elif re.match(r'dino_.+\.(safetensors|pth)$', name):
        stem = osp.splitext(name)[0]
        problem += (f'It is the export of a DINO pretraining: `python tools/train.py '
                    f'configs/dino/{stem}.py`, then `python tools/misc/export_backbone.py '
                    f'work_dirs/{stem} {path}` (docs/dino.md). ')
    return problem + 'Or pass --pretrained FILE for your copy, or --pretrained none for ' \
                     'random weights.'


def check_before_run(cfg: Config,
                     tool: str,
                     checkpoint: Optional[str] = None,
                     reads_pretrained: Optional[bool] = None) -> None:
    """Refuse a prepared config (:func:`~medtrans.apis.prepare_config`) that cannot run.

    Checked, each problem with the option or tool that fixes it: the checkpoint (first, and
    alone: :func:`check_checkpoint`), the types of the sections the Runner builds (registered
    in the scope they are built in), the data folders of the dataloaders ``tool`` reads
    (:data:`LOADERS_READ`), the backbone's weight file where the run initialises the model,
    and the packages of the configured visualisation backends.

    Args:
        cfg (Config): The prepared config.
        tool (str): ``'train'``, ``'test'`` or ``'knn'``.
        checkpoint (str, optional): A checkpoint the run loads. Defaults to None.
        reads_pretrained (bool, optional): Whether the run initialises the model from the
            config (reading ``pretrained``). Defaults to None: a training run that does not
            resume.

    Raises:
        PreflightError: Every problem found.
    """
    if checkpoint is not None:
        check_checkpoint(checkpoint, cfg.get('work_dir'))
    problems = unregistered_types(cfg, RUN_SECTIONS)
    problems += _data_root_problems(cfg, LOADERS_READ[tool])
    if reads_pretrained is None:
        reads_pretrained = tool == 'train' and not cfg.get('resume', False)
    field, path = pretrained_field(cfg)
    if reads_pretrained and isinstance(path, str) and not osp.isfile(osp.expanduser(path)):
        problems.append(_weight_problem(field, path))
    backends = ((cfg.get('visualizer') or {}).get('vis_backends') or []) if isinstance(
        cfg.get('visualizer'), dict) else []
    for name, (backend, package) in VIS_BACKENDS.items():
        if any(str(b.get('type')).split('.')[-1] == backend for b in backends) and \
                importlib.util.find_spec(package) is None:
            problems.append(f'visualizer.vis_backends: {backend} (--vis-backend {name}) needs '
                            f'the {package} package, which is not installed: pip install '
                            f'{package}' + (' (or mlflow-skinny, sqlalchemy and alembic)'
                                            if name == 'mlflow' else '') + '.')
    if problems:
        raise PreflightError(problems)
