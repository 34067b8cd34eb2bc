"""Inter-annotator agreement of a segmentation test set (CSAW-S: three annotators).

    python tools/analysis/annotator_agreement.py CONFIG [--data-root DIR] \
        [--annotators 1 2 3] [--out agreement.json]

e.g. with CONFIG ``configs/deeplabv3/deeplabv3_deit-s_1xb8_plateau_csaw-s-512x512.py``.

Scores each pair of annotators' masks of the config's test images with the metric that scores
the models (``LesionSegMetric``: IoU, Jaccard, Dice), so a model's test IoU against annotator 1
can be read beside the human agreement.
"""
import argparse
import json

from medtrans.apis.cli import add_config_args, load_config, retarget_options


def parse_args():
    parser = argparse.ArgumentParser(description='IoU between the annotators of a test set')
    add_config_args(parser)
    parser.add_argument('--annotators', type=int, nargs='+',
                        help='annotators to compare (default: all the dataset has)')
    parser.add_argument('--out', help='also write the scores to this JSON file')
    return parser.parse_args()


def main():
    args = parse_args()
    from medtrans.analysis import annotator_agreement
    from medtrans.fileio import atomic_write_text

    cfg = load_config(args.config, args.cfg_options, **retarget_options(args))
    scores = annotator_agreement(cfg.test_dataloader.dataset, args.annotators)
    names = list(next(iter(scores.values())))
    print('annotators  ' + '  '.join(f'{name:>19}' for name in names))
    for pair, values in scores.items():
        print(f'{pair:<11}  ' + '  '.join(f'{values[name]:>19.4f}' for name in names))
    if args.out:
        atomic_write_text(args.out, json.dumps(scores, indent=1) + '\n')


if __name__ == '__main__':
    main()
