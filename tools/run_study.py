"""Run a study (configs x seeds, e.g. the paper's tables), side by side, and resume it.

    python tools/run_study.py configs/studies/table1.py --dry-run [--plan plan.json]
    python tools/run_study.py configs/studies/table1.py [--gpus 8] [--max-parallel N]
    python tools/run_study.py configs/studies/table1.py --smoke --only dataset=aptos2019 \\
        --data-root aptos2019=/data/aptos --weights-dir checkpoints
    python tools/run_study.py configs/studies/table1.py --launcher pytorch [--script F]
    python tools/run_study.py configs/studies/table1.py --launcher slurm [--partition P] \
        [--time 24:00:00] [--account A] [--sbatch-args='--qos=high --cpus-per-task=8']

The study becomes a plan of jobs (pretrainings, then cell runs; each at its config's recipe:
GPUs x per-GPU batch x accumulation = the recipe's total batch, at the config's LR). Without
``--launcher``, the jobs not done run here side by side, each on the GPUs its recipe needs (or
one CPU slot), a cell after the pretraining whose export it reads; a failed job stops only the
jobs that wait for it, and the tool then exits with status 1. Finished runs (test metrics
written; for a pretraining, its export) are skipped, started ones resume. With ``--launcher
pytorch`` the same commands, one job after another, are written to a bash script; with
``--launcher slurm`` the jobs are submitted with ``sbatch`` (cells as job arrays, after the
pretrainings they read; requeued and resumed when preempted) and their Slurm ids printed.
``tools/analysis/summarize.py`` then makes the tables. See docs/study.md.
"""
import argparse
import json
import os
import os.path as osp
import shlex
import sys


def parse_args():
    parser = argparse.ArgumentParser(description='Run or resume a study')
    parser.add_argument('spec', help='study spec (configs/studies/*.py)')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the plan (each job: status, GPUs, batch, LR, what it waits '
                        'for, commands); run nothing')
    parser.add_argument('--plan', metavar='FILE', help='write the plan as JSON to FILE')
    parser.add_argument(
        '--gpus', type=int,
        help='GPUs of this machine for the study (default: those visible; 0: the CPU); with '
        '--launcher, the most a job may take (default: each recipe\'s own count)')
    parser.add_argument('--max-parallel', type=int, metavar='N',
                        help='jobs at once (default: one per GPU; on the CPU 1)')
    parser.add_argument('--work-root', help="the study's work root (default: the spec's "
                        'work_root, else work_dirs/studies/<spec name>[_smoke])')
    parser.add_argument('--data-root', action='append', default=[], metavar='NAME=DIR',
                        help='the folder of a dataset (by its name in the spec, e.g. '
                        'aptos2019=/data/aptos); repeatable')
    parser.add_argument('--weights-dir', metavar='DIR',
                        help='the folder of the ImageNet weight files the configs name')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='overrides for every run, as tools/train.py takes them')
    parser.add_argument('--only', action='append', default=[], metavar='KEY=V1[,V2]',
                        help='only the runs with these values (keys: the spec\'s axes, e.g. '
                        'dataset, model, init, and seed); repeatable, all must hold')
    parser.add_argument('--smoke', action='store_true',
                        help='every selected job (pretrainings too) for a few iterations on a '
                        'few small images, to check a study on your data and machine in '
                        'minutes; only the first seed unless --only seed=... says otherwise')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='you change the batch on purpose (--cfg-options '
                        'train_dataloader.batch_size=B): scale the LR linearly')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='none: run here; pytorch: write a torchrun script; slurm: submit '
                        'with sbatch (--dry-run: print the sbatch commands and scripts)')
    parser.add_argument('--script', help='the torchrun script (default: '
                        '<work_root>/run_pytorch.sh)')
    slurm = parser.add_argument_group('Slurm (--launcher slurm)')
    slurm.add_argument('--partition', help='sbatch --partition (default: the cluster\'s)')
    slurm.add_argument('--time', help='sbatch --time of every job, e.g. 24:00:00; a job that '
                       'reaches it is requeued and resumes (default: the partition\'s)')
    slurm.add_argument('--account', help='sbatch --account')
    slurm.add_argument('--sbatch-args', default='', metavar="'ARGS'",
                       help="more sbatch options for every job, as one string: "
                       "--sbatch-args='--qos=high --cpus-per-task=8'")
    slurm.add_argument('--signal-seconds', type=int, default=None, metavar='S',
                       help='warn a job S seconds before its time limit (SIGUSR1): it '
                       'checkpoints and requeues itself (default: 300)')
    return parser.parse_args()


def _data_roots(items):
    roots = {}
    for item in items:
        name, sep, folder = item.partition('=')
        if not sep or not name or not folder:
            raise SystemExit(f'run_study.py: --data-root {item}: expected NAME=DIR (e.g. '
                             'aptos2019=/data/aptos)')
        roots[name] = folder
    return roots


def _visible_gpus():
    """The GPU ids a local run may use (CUDA_VISIBLE_DEVICES' values where it is set)."""
    import torch
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    if visible:
        return [v.strip() for v in visible.split(',') if v.strip()][:count]
    return [str(i) for i in range(count)]


def _refuse_missing_inputs(plan):
    from medtrans.analysis.study import missing_inputs
    missing = missing_inputs(plan)
    if missing:
        raise SystemExit('run_study.py: missing inputs (give --weights-dir / --data-root, or '
                         'fetch them):\n  ' + '\n  '.join(missing))


def _submit(args, plan, python):
    """``--launcher slurm``: submit the plan (or print it), with the Slurm options."""
    from medtrans.analysis.study import SlurmError, SlurmOptions, submit_plan
    from medtrans.analysis.study.slurm import SIGNAL_SECONDS
    if args.script:
        raise SystemExit('run_study.py: --script is for --launcher pytorch; Slurm scripts go '
                         'to <work_root>/slurm/')
    try:
        options = SlurmOptions(
            partition=args.partition, time=args.time, account=args.account,
            signal_seconds=(SIGNAL_SECONDS if args.signal_seconds is None
                            else args.signal_seconds),
            sbatch_args=tuple(shlex.split(args.sbatch_args)), python=python)
    except ValueError as err:
        raise SystemExit(f'run_study.py: --signal-seconds: {err}') from err
    if not args.dry_run:
        _refuse_missing_inputs(plan)
    try:
        submit_plan(plan, options, dry_run=args.dry_run)
    except SlurmError as err:
        raise SystemExit(f'run_study.py: {err}') from err


def main():
    args = parse_args()
    from medtrans.analysis.study import (
        build_plan,
        cluster_script,
        load_study,
        parse_only,
        run_study,
    )
    from medtrans.fileio import atomic_write_text
    from medtrans.setup_env import register_all_modules

    register_all_modules(init_default_scope=False)
    try:
        only = parse_only(args.only)
        work_root = args.work_root
        if args.smoke and not work_root:
            spec_root = load_study(args.spec).work_root
            work_root = spec_root.rstrip('/') + '_smoke'
        study = load_study(args.spec, work_root)
        if args.smoke and 'seed' not in only:
            only['seed'] = [str(min(run.seed for run in study.runs))]
        local = args.launcher == 'none'
        gpu_ids = []
        if local and args.dry_run and args.gpus is not None:
            gpu_ids = [str(i) for i in range(args.gpus)]  # a plan for another machine
        elif local:
            gpu_ids = _visible_gpus()
            if args.gpus is not None:
                if args.gpus > len(gpu_ids):
                    raise ValueError(f'--gpus {args.gpus}: this machine shows {len(gpu_ids)} '
                                     'GPUs (--dry-run plans for another machine).')
                gpu_ids = gpu_ids[:args.gpus]
        gpus = len(gpu_ids) if local else args.gpus
        plan = build_plan(study, gpus=gpus, only=only, smoke=args.smoke,
                          data_roots=_data_roots(args.data_root), weights_dir=args.weights_dir,
                          cfg_options=args.cfg_options, auto_scale_lr=args.auto_scale_lr)
    except ValueError as err:
        raise SystemExit(f'run_study.py: {err}') from err
    python = sys.executable
    if args.plan:
        os.makedirs(osp.dirname(osp.abspath(args.plan)), exist_ok=True)
        atomic_write_text(args.plan, json.dumps(plan.to_json(python), indent=1) + '\n')
    if args.launcher == 'slurm':
        _submit(args, plan, python)
        return
    if args.dry_run:
        if local:
            print('\n'.join(plan.describe(python)))
        else:
            print(cluster_script(plan, python, record=False))
        return
    if not local:
        script = args.script or osp.join(study.work_root, f'run_{args.launcher}.sh')
        os.makedirs(osp.dirname(osp.abspath(script)), exist_ok=True)
        atomic_write_text(script, cluster_script(plan, python))
        print(f'study {study.name}: commands of the jobs not done written to {script}; run it '
              f'with `bash {script}` from the repository root (re-run this tool to refresh it)')
        return
    _refuse_missing_inputs(plan)
    outcome = run_study(plan, gpu_ids=gpu_ids, max_parallel=args.max_parallel, python=python)
    print(f'study {study.name}: ' + '\n'.join(outcome.report()))
    if not outcome.ok:
        sys.exit(1)


if __name__ == '__main__':
    main()
