"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--show-dir D] [--out F]
[--out-dir D]``."""
import argparse

from medtrans.apis.cli import (
    add_config_args,
    add_launcher_args,
    load_config,
    retarget_options,
)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a medtrans model')
    add_config_args(parser)
    parser.add_argument('checkpoint', help='checkpoint file (loaded without executing code)')
    parser.add_argument('--show-dir', help='save prediction overlays as PNG files in this dir')
    parser.add_argument(
        '--out', help='write a per-image CSV: classification: id, label(s) and class '
        'probabilities; segmentation: pixel counts tp, fp, fn')
    parser.add_argument(
        '--out-dir', help="segmentation: write each image's predicted mask to this dir, at the "
        "image's size and in its dataset's challenge format (ISIC 2018: "
        'ISIC_<id>_segmentation.png, 0/255)')
    add_launcher_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    from medtrans.apis import (
        build_runner,
        close_distributed,
        enable_mask_export,
        enable_predictions_csv,
        enable_show_dir,
        prepare_config,
        read_only_tested_split,
    )

    cfg = load_config(args.config, args.cfg_options, args.local_rank, **retarget_options(args))
    prepare_config(cfg, args.config, work_dir=args.work_dir, launcher=args.launcher,
                   load_from=args.checkpoint)
    read_only_tested_split(cfg)
    if args.show_dir:
        enable_show_dir(cfg, args.show_dir)
    if args.out:
        enable_predictions_csv(cfg, args.out)
    if args.out_dir:
        enable_mask_export(cfg, args.out_dir)
    runner = build_runner(cfg)
    try:
        runner.test()
    finally:
        close_distributed()


if __name__ == '__main__':
    main()
