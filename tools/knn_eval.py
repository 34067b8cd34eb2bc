"""k-NN evaluation of frozen features: ``python tools/knn_eval.py CONFIG [CHECKPOINT]``.

CHECKPOINT is a medtrans run checkpoint, a backbone weight file (an export, or a timm ImageNet
file), or absent (the config's own ImageNet or random initialisation). A random initialisation
is drawn from the run's seed, ``--cfg-options randomness.seed=S`` (the config's otherwise): the
study's Table 3 evaluates one per seed. The metrics JSON goes to
``{work_dir}/metrics/test_latest.json`` (work dir default: ``work_dirs/knn/<config name>``);
``--out`` writes the per-image scores the bootstrap intervals read.
"""
import argparse

from medtrans.apis.cli import (
    add_config_args,
    add_launcher_args,
    load_config,
    retarget_options,
)


def parse_args():
    parser = argparse.ArgumentParser(description='k-NN evaluation of frozen features')
    add_config_args(parser)
    parser.add_argument(
        'checkpoint', nargs='?', help='medtrans checkpoint or backbone weight file (loaded '
        'without executing code); omit it for the config\'s own initialisation')
    parser.add_argument('--k', type=int, help='number of neighbours (default: the config\'s, '
                        'else 200)')
    parser.add_argument('--temperature', type=float, help='temperature T of the vote weights '
                        'exp(similarity / T) (default: the config\'s, else 0.07)')
    parser.add_argument(
        '--out', help='write each test image\'s id, label(s) and k-NN class scores to this '
        'CSV file')
    add_launcher_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    from medtrans.apis import (
        close_distributed,
        enable_predictions_csv,
        knn_evaluate,
        prepare_knn_config,
    )

    cfg = load_config(args.config, args.cfg_options, args.local_rank, **retarget_options(args))
    prepare_knn_config(cfg, args.config, work_dir=args.work_dir, launcher=args.launcher,
                       k=args.k, temperature=args.temperature)
    if args.out:
        enable_predictions_csv(cfg, args.out)
    try:
        knn_evaluate(cfg, args.checkpoint)
    finally:
        close_distributed()


if __name__ == '__main__':
    main()
