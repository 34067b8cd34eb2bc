"""Train a model from a config: ``python tools/train.py CONFIG [--work-dir DIR] [--resume]``."""
import argparse
import os

from mmengine.config import Config, DictAction


def parse_args():
    parser = argparse.ArgumentParser(description='Train a medtrans model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or, without a value, from the latest '
        'checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs (e.g. train_cfg.max_iters=100)')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    # medtrans is imported after argument parsing so that --help stays fast.
    from mmengine.dist import is_main_process

    from medtrans.apis import (
        build_runner,
        check_work_dir,
        close_distributed,
        final_metrics_summary,
        prepare_config,
    )
    from medtrans.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    resume = True if args.resume == 'auto' else (args.resume or False)
    prepare_config(cfg, args.config, work_dir=args.work_dir, launcher=args.launcher,
                   amp=args.amp, resume=resume)
    check_work_dir(cfg)
    runner = build_runner(cfg)
    try:
        runner.train()
        if is_main_process():
            print(final_metrics_summary(runner), flush=True)
    finally:
        close_distributed()


if __name__ == '__main__':
    main()
