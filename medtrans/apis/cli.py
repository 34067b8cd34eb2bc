"""Command-line pieces shared by the tools: the flags mmseg users know, and config loading."""
import argparse
import os
from typing import Optional

from mmengine.config import Config, DictAction

__all__ = ['add_config_args', 'add_launcher_args', 'load_config']


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Add ``config``, ``--work-dir`` and ``--cfg-options``."""
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='the dir to save logs, checkpoints and metrics')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs (e.g. train_cfg.max_iters=100 '
        'train_dataloader.dataset.data_root=data/ISIC2018)')


def add_launcher_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--launcher`` and ``--local-rank`` (the latter for torch.distributed.launch)."""
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(path: str, cfg_options: Optional[dict] = None,
                local_rank: Optional[int] = None) -> Config:
    """Read a config file, with medtrans registered, and apply command-line overrides.

    Args:
        path (str): Config file.
        cfg_options (dict, optional): ``--cfg-options`` overrides. Defaults to None.
        local_rank (int, optional): ``--local-rank``; exported as ``LOCAL_RANK`` unless the
            launcher set it. Defaults to None.
    """
    from medtrans.setup_env import register_all_modules

    if local_rank is not None:
        os.environ.setdefault('LOCAL_RANK', str(local_rank))
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
