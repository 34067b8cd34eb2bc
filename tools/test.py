"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--show-dir D] [--out F]
[--out-dir D]``.

A missing checkpoint, data folder or registered type stops the tool before anything is built,
with one message (a missing checkpoint lists those of its folder or the work dir). The run
ends with a summary: the metrics, and where they, the split records and the outputs went.
"""
import argparse

from medtrans.apis import (
    ToolRun,
    add_config_args,
    add_debug_arg,
    add_launcher_args,
    build_runner,
    check_before_run,
    closing_process_group,
    enable_mask_export,
    enable_predictions_csv,
    enable_show_dir,
    load_config,
    prepare_config,
    read_only_tested_split,
    retarget_options,
    set_batch_size,
    test_summary,
    use_first_batches,
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
    parser.add_argument(
        '--iters', type=int, metavar='N',
        help='test on the first N batches only (a quick check: the metrics are of those images)')
    parser.add_argument('--batch-size', type=int, metavar='N',
                        help='images per test batch in each process (the metrics do not change)')
    add_launcher_args(parser)
    add_debug_arg(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    with ToolRun(args) as run:
        cfg = load_config(args.config, args.cfg_options, args.local_rank,
                          **retarget_options(args))
        prepare_config(cfg, args.config, work_dir=args.work_dir, launcher=args.launcher,
                       load_from=args.checkpoint)
        check_before_run(cfg, 'test', checkpoint=args.checkpoint, reads_pretrained=False)
        if args.batch_size is not None:
            set_batch_size(cfg, args.batch_size, ['test_dataloader'])
        if args.iters is not None:
            use_first_batches(cfg, args.iters, ['test_dataloader'])
        read_only_tested_split(cfg)
        outputs = {}
        if args.show_dir:
            enable_show_dir(cfg, args.show_dir)
            outputs['Overlays'] = args.show_dir
        if args.out:
            enable_predictions_csv(cfg, args.out)
            outputs['Per-image CSV'] = args.out
        if args.out_dir:
            enable_mask_export(cfg, args.out_dir)
            outputs['Masks'] = args.out_dir
        with closing_process_group():
            run_testing(cfg, run, outputs)


def run_testing(cfg, run: ToolRun, outputs: dict) -> None:
    """Build the Runner, test and log the summary: inside a function, so that no variable of
    ``main`` holds the Runner, whose DDP wrapper holds the process group (see
    ``close_distributed``)."""
    runner = build_runner(cfg)
    run.started(cfg)
    metrics = runner.test()
    runner.logger.info(test_summary(runner, metrics, outputs))


if __name__ == '__main__':
    main()
