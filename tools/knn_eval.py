"""k-NN evaluation of frozen features: ``python tools/knn_eval.py CONFIG [CHECKPOINT]``.

CHECKPOINT is a medtrans run checkpoint, a backbone weight file (an export, or a timm ImageNet
file), or absent (the config's own ImageNet or random initialisation). A random initialisation
is drawn from the run's seed, ``--cfg-options randomness.seed=S`` (the config's otherwise): the
study's Table 3 evaluates one per seed. The metrics JSON goes to
``{work_dir}/metrics/test_latest.json`` (work dir default: ``work_dirs/knn/<config name>``);
``--out`` writes the per-image scores the bootstrap intervals read. A missing checkpoint, data
folder, weight file or registered type stops the tool before anything is built, with one
message.
"""
import argparse

from medtrans.apis import (
    ToolRun,
    add_config_args,
    add_debug_arg,
    add_launcher_args,
    check_before_run,
    closing_process_group,
    enable_predictions_csv,
    knn_evaluate,
    load_config,
    prepare_knn_config,
    retarget_options,
    set_batch_size,
    use_first_batches,
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
    parser.add_argument(
        '--iters', type=int, metavar='N',
        help='read the first N batches of the memory (train) and test sets only (a quick check: '
        'the metrics are of those images)')
    parser.add_argument(
        '--batch-size', type=int, metavar='N',
        help='images per batch in each process, memory and test sets (the metrics do not '
        'change)')
    add_launcher_args(parser)
    add_debug_arg(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    with ToolRun(args) as run:
        cfg = load_config(args.config, args.cfg_options, args.local_rank,
                          **retarget_options(args))
        prepare_knn_config(cfg, args.config, work_dir=args.work_dir, launcher=args.launcher,
                           k=args.k, temperature=args.temperature)
        # Without a checkpoint the model starts as the config initialises it.
        check_before_run(cfg, 'knn', checkpoint=args.checkpoint,
                         reads_pretrained=args.checkpoint is None)
        # The memory set is read as the test set is (its pipeline and batch size).
        if args.batch_size is not None:
            set_batch_size(cfg, args.batch_size, ['test_dataloader'])
        if args.iters is not None:
            use_first_batches(cfg, args.iters, ['train_dataloader', 'test_dataloader'],
                              batch_size=cfg.test_dataloader.batch_size)
        if args.out:
            enable_predictions_csv(cfg, args.out)
        run.started(cfg)
        with closing_process_group():
            knn_evaluate(cfg, args.checkpoint)


if __name__ == '__main__':
    main()
