"""Check every file of a config's datasets before training; list all problems at once.

``python tools/check_dataset.py CONFIG [--cfg-options ...] [--work-dir DIR]
[--splits train val test] [--workers N]``

Exits with status 1 if any problem was found, 0 otherwise. The work dir is the one
tools/train.py would use (``--work-dir``, else ``./work_dirs/<config name>``), and the divided
splits are checked against their records there (``<work_dir>/splits/``), or recorded, as
training does (``SplitRecordHook``); the report ends with the records it wrote or matched.
Every bad row of a label table is one line of the report (its other rows are still checked).
On a terminal a progress bar is drawn on stderr; otherwise a line every ``--progress-every``
samples.
"""
import argparse
import os
import sys

from medtrans.apis.cli import add_config_args, load_config, retarget_options


def parse_args():
    parser = argparse.ArgumentParser(
        description='Decode every image and mask of a config\'s datasets and report all '
        'problems (unreadable files, bad masks, duplicates and leakage across splits)')
    add_config_args(parser)
    parser.add_argument(
        '--splits', nargs='+', default=['train', 'val', 'test'],
        help='splits to check, as in <split>_dataloader (default: train val test)')
    parser.add_argument(
        '--workers', type=int, default=min(4, os.cpu_count() or 1),
        help='threads decoding files; 0 decodes in the main thread (default: up to 4)')
    parser.add_argument(
        '--progress-every', type=int, default=500,
        help='without a terminal, print a progress line to stderr every this many samples '
        '(default: 500); on a terminal a progress bar is drawn instead')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from medtrans.apis import prepare_config
    from medtrans.datasets.check import check_dataset

    cfg = load_config(args.config, args.cfg_options, **retarget_options(args))
    prepare_config(cfg, args.config, work_dir=args.work_dir)
    report = check_dataset(
        cfg, splits=args.splits, num_workers=args.workers, progress_every=args.progress_every,
        log=lambda line: print(line, file=sys.stderr, flush=True), work_dir=cfg.work_dir)
    print(f'Dataset check of {args.config}')
    print(report.format(), flush=True)
    return 0 if report.ok else 1


if __name__ == '__main__':
    sys.exit(main())
