"""Command-line pieces shared by the tools: the flags mmseg users know, and config loading."""
import argparse
import os
from typing import Any, Dict, Optional

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from .retarget import check_overrides, retarget

__all__ = ['add_config_args', 'add_launcher_args', 'load_config', 'retarget_options']


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
    changed = retarget(cfg, **retargets)
    for name, fields in changed.items():
        print_log(f'{name} = {retargets[name]!r} set in {", ".join(fields)}', logger='current')
    check_overrides(cfg, cfg_options)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
