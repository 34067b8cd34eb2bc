"""Train a model from a config: ``python tools/train.py CONFIG [--work-dir DIR] [--resume]``.

Before anything is built, the config is checked (data folders, weight files, registered types,
the options): a problem stops the tool with one message saying what to fix (``--debug`` adds
the traceback).
"""
import argparse

from medtrans.apis import (
    ToolRun,
    add_config_args,
    add_debug_arg,
    add_launcher_args,
    build_runner,
    check_before_run,
    check_work_dir,
    closing_process_group,
    load_config,
    prepare_config,
    retarget_options,
)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a medtrans model')
    add_config_args(parser)
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or, without a value, from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--iters', type=int, metavar='N',
        help='train N iterations, whatever the loop (DINO\'s epochs included): a short run to '
        'try a config. Schedules, validation and checkpoint intervals stay the config\'s; the '
        'last iteration is checkpointed, and validated where validation has begun')
    parser.add_argument(
        '--batch-size', type=int, metavar='N',
        help='images per training batch in each process (train_dataloader.batch_size): the '
        'total batch becomes processes x N x --accumulate. The LR follows only where '
        'auto_scale_lr is enabled: the DINO configs (DINO\'s linear rule) or --auto-scale-lr; '
        'other configs keep their LR')
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
    parser.add_argument(
        '--vis-backend', action='append', choices=['tensorboard', 'mlflow', 'wandb'],
        metavar='NAME', default=[],
        help='also log the run to tensorboard, mlflow or wandb (repeatable), through MMEngine\'s '
        'visualisation backends: TensorBoard files and, unless MLFLOW_TRACKING_URI is set, an '
        'MLflow SQLite store (mlflow.db) in the work dir; W&B as its login and WANDB_MODE say')
    add_launcher_args(parser)
    add_debug_arg(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    with ToolRun(args) as run:
        cfg = load_config(args.config, args.cfg_options, args.local_rank,
                          **retarget_options(args))
        resume = True if args.resume == 'auto' else (args.resume or False)
        prepare_config(cfg, args.config, work_dir=args.work_dir, launcher=args.launcher,
                       amp=args.amp, resume=resume, auto_scale_lr=args.auto_scale_lr,
                       accumulate=args.accumulate, compile=args.compile, iters=args.iters,
                       batch_size=args.batch_size, vis_backends=args.vis_backend)
        check_work_dir(cfg)
        check_before_run(cfg, 'train', checkpoint=resume if isinstance(resume, str) else None)
        with closing_process_group():
            run_training(cfg, run)


def run_training(cfg, run: ToolRun) -> None:
    """Build the Runner and train: inside a function, so that no variable of ``main`` holds the
    Runner, whose DDP wrapper holds the process group (see ``closing_process_group``)."""
    runner = build_runner(cfg)
    run.started(cfg)
    runner.train()


if __name__ == '__main__':
    main()
