"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--show-dir DIR]``."""
import argparse
import os

from mmengine.config import Config, DictAction


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a medtrans model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file (loaded without executing code)')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--show-dir', help='save prediction overlays as PNG files in this dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    from medtrans.apis import build_runner, close_distributed, enable_show_dir, prepare_config
    from medtrans.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    prepare_config(cfg, args.config, work_dir=args.work_dir, launcher=args.launcher,
                   load_from=args.checkpoint)
    if args.show_dir:
        enable_show_dir(cfg, args.show_dir)
    runner = build_runner(cfg)
    try:
        runner.test()
    finally:
        close_distributed()


if __name__ == '__main__':
    main()
