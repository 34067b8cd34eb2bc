"""Train a model from a config: ``python tools/train.py CONFIG [--work-dir DIR] [--resume]``."""
import argparse

from medtrans.apis.cli import (
    add_config_args,
    add_launcher_args,
    load_config,
    retarget_options,
)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a medtrans model')
    add_config_args(parser)
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or, without a value, from the latest '
        'checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision in bfloat16 (GPUs and CPUs)')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help="scale the LR linearly from the config's auto_scale_lr.base_batch_size to this "
        "run's total batch (GPUs x batch x --accumulate)")
    parser.add_argument(
        '--compile', action='store_true',
        help='torch.compile the train step (skipped, with the reason logged, where the '
        'compiler is missing)')
    parser.add_argument(
        '--accumulate', type=int, metavar='N',
        help='accumulate gradients over N iterations per optimizer step (a batch N times '
        'larger on small GPUs)')
    add_launcher_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    from medtrans.apis import build_runner, check_work_dir, close_distributed, prepare_config

    cfg = load_config(args.config, args.cfg_options, args.local_rank, **retarget_options(args))
    resume = True if args.resume == 'auto' else (args.resume or False)
    prepare_config(cfg, args.config, work_dir=args.work_dir, launcher=args.launcher,
                   amp=args.amp, resume=resume, auto_scale_lr=args.auto_scale_lr,
                   accumulate=args.accumulate, compile=args.compile)
    check_work_dir(cfg)
    runner = build_runner(cfg)
    try:
        runner.train()
    finally:
        close_distributed()


if __name__ == '__main__':
    main()
