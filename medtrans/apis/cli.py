"""Command-line pieces shared by the tools: the flags mmseg users know, config loading, and how
a tool reports an error."""
import argparse
import os
import os.path as osp
import sys
import traceback
from typing import Any, Dict, List, Optional

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from .retarget import NO_TENSORBOARD_SWITCH, check_overrides, data_root_fields, retarget

__all__ = ['add_config_args', 'add_launcher_args', 'add_debug_arg', 'load_config',
           'retarget_options', 'ToolRun']


def _config_file(path: str) -> str:
    """An existing config file; otherwise argparse prints one line of usage error."""
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f'no such config file: {path}')
    return path


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Add ``config``, ``--work-dir``, ``--cfg-options`` and the retargeting options
    ``--data-root``, ``--pretrained``, ``--img-size`` (:func:`retarget_options`)."""
    parser.add_argument('config', type=_config_file, help='config file path')
    parser.add_argument('--work-dir', help='the dir to save logs, checkpoints and metrics')
    parser.add_argument(
        '--data-root', help='the dataset folder, for every dataloader of the config')
    parser.add_argument(
        '--pretrained', help="the backbone's weight file, wherever the model reads it; 'none' "
        'for random init')
    parser.add_argument(
        '--img-size', type=int, help='the input size (side of the training crop); every size '
        'of the run (resize, crops, data preprocessor, backbone) follows in proportion')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs (e.g. train_cfg.max_iters=100); a '
        'top-level variable the config copied into other fields is refused, as the change would '
        'reach nothing (use the options above for data_root, pretrained and sizes)')


def retarget_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The retargeting options given on the command line, as :func:`load_config` takes them."""
    options: Dict[str, Any] = {}
    if args.data_root is not None:
        options['data_root'] = args.data_root
    if args.pretrained is not None:
        options['pretrained'] = None if args.pretrained.lower() == 'none' else args.pretrained
    if args.img_size is not None:
        options['img_size'] = args.img_size
    return options


def add_launcher_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--launcher`` and ``--local-rank`` (the latter for torch.distributed.launch)."""
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def add_debug_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug``: errors before the run with their traceback (:class:`ToolRun`)."""
    parser.add_argument(
        '--debug', action='store_true',
        help='show the traceback of an error found before the run starts (by default one '
        'message says what to fix)')


def _data_roots(cfg) -> List[str]:
    roots = [root for *_, root in data_root_fields(cfg) if isinstance(root, str) and root]
    return list(dict.fromkeys(roots + [osp.abspath(root) for root in roots]))


class ToolRun:
    """How a tool ends on an error (a context manager around its ``main``).

    Until :meth:`started` (once the config is loaded and checked, and the Runner built): one
    message on stderr saying what to fix, exit status 1, no traceback unless ``--debug``. The
    checks before the Runner (:func:`~medtrans.apis.preflight.check_before_run`) find the
    common problems before it prints anything; its config goes to the work dir's log. Once
    started: the traceback, as Python prints it, followed, when the error names a file under one
    of the config's data folders (a sample that could not be read), by the
    ``tools/check_dataset.py`` command that reports every such file at once.

    Args:
        args (argparse.Namespace): The tool's arguments: ``config``, and ``debug``,
            ``data_root`` where the tool has them.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.prog = osp.basename(sys.argv[0]) or 'medtrans'
        self._data_roots: Optional[List[str]] = None

    def started(self, cfg) -> None:
        """The run starts: errors from now on are the run's (see the class docstring)."""
        self._data_roots = _data_roots(cfg)

    def __enter__(self) -> 'ToolRun':
        return self

    def __exit__(self, kind, error, tb) -> bool:
        if not isinstance(error, Exception):
            return False
        if self._data_roots is None:
            if getattr(self.args, 'debug', False):
                return False
            message = (error.args[0] if isinstance(error, KeyError) and error.args else
                       str(error) if isinstance(error, (ValueError, OSError, ImportError)) else
                       f'{type(error).__name__}: {error}')
            print(f'{self.prog}: error: {message}\n{self.prog}: (--debug shows the traceback)',
                  file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        text = str(error)
        if isinstance(error, (ValueError, OSError)) and any(
                root in text for root in self._data_roots):
            traceback.print_exception(error)
            command = f'python tools/check_dataset.py {self.args.config}'
            if getattr(self.args, 'data_root', None):
                command += f' --data-root {self.args.data_root}'
            print(f'{self.prog}: a file of the data could not be read (above). `{command}` '
                  "reads every file of the config's data and reports all problems at once.",
                  file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        return False


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                local_rank: Optional[int] = None,
                **retargets: Any) -> Config:
    """Read a config file, with medtrans registered, retarget it and apply overrides.

    Args:
        path (str): Config file.
        cfg_options (dict, optional): ``--cfg-options`` overrides, applied last; an override
            of a top-level variable that the file copied into other fields is refused
            (:func:`~medtrans.apis.retarget.check_overrides`). Defaults to None.
        local_rank (int, optional): ``--local-rank``; exported as ``LOCAL_RANK`` unless the
            launcher set it. Defaults to None.
        **retargets: ``data_root``, ``pretrained``, ``img_size`` for
            :func:`~medtrans.apis.retarget.retarget`.

    Raises:
        ValueError: An override refused as above, or a ``retarget = dict(...)`` in the file
            (no longer read).
    """
    from medtrans.setup_env import load_plugins, log_plugins, register_all_modules

    if local_rank is not None:
        os.environ.setdefault('LOCAL_RANK', str(local_rank))
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(path)  # imports the config's custom_imports
    custom_imports = (cfg.get('custom_imports') or {}).get('imports', [])
    if custom_imports:
        log_plugins(load_plugins(), [custom_imports] if isinstance(custom_imports, str)
                    else custom_imports)
    if 'retarget' in cfg:
        raise ValueError(
            f'{path}: `retarget = dict(...)` is no longer read (MMEngine does not know the key, '
            'so the config ran only through medtrans tools). Set the fields themselves, as '
            'configs/demo/deeplab3_deit_s_demo_isic2018.py does, or pass --data-root, '
            '--pretrained, --img-size.')
    if 'tensorboard' in cfg:
        raise ValueError(NO_TENSORBOARD_SWITCH.format(where=f'{path}: `tensorboard = ...`'))
    changed = retarget(cfg, **retargets)
    for name, fields in changed.items():
        print_log(f'{name} = {retargets[name]!r} set in {", ".join(fields)}', logger='current')
    check_overrides(cfg, cfg_options)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
