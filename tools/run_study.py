"""Run a study (configs x seeds, e.g. the study's tables) and resume it after an interruption.

    python tools/run_study.py configs/studies/table1.py [--dry-run]
    python tools/run_study.py configs/studies/table1.py --launcher pytorch --gpus 8 [--script F]
    python tools/run_study.py configs/studies/table1.py --launcher slurm --partition P --gpus 4

Without ``--launcher``, the runs that are not done run here one after another (training, then
testing of the best checkpoint; k-NN configs are evaluated), a progress line each with an ETA;
finished runs (test metrics written) are skipped and a started run resumes from its newest
checkpoint. With ``--launcher pytorch`` or ``slurm`` the same commands, through
``tools/dist_*.sh`` or ``tools/slurm_train.sh``, are written to a bash script to run on the
cluster. ``tools/analysis/summarize.py`` then makes the tables.
"""
import argparse
import os
import os.path as osp


def parse_args():
    parser = argparse.ArgumentParser(description='Run or resume a study')
    parser.add_argument('spec', help='study spec (configs/studies/*.py)')
    parser.add_argument('--dry-run', action='store_true',
                        help='list each run with its status and commands; run nothing')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='none: run here; pytorch / slurm: write a cluster script')
    parser.add_argument('--gpus', type=int, default=1,
                        help='GPUs per run (cluster launchers); the one-GPU cell recipes then '
                        'train with a batch that many times larger and the LR scaled linearly')
    parser.add_argument('--partition', help='Slurm partition')
    parser.add_argument('--script', help='cluster script path (default: '
                        '<work_root>/run_<launcher>.sh)')
    return parser.parse_args()


def main():
    args = parse_args()
    from medtrans.analysis.study import cluster_script, load_study, run_study
    from medtrans.fileio import atomic_write_text

    study = load_study(args.spec)
    if args.launcher != 'none' and args.dry_run:
        print(cluster_script(study, args.launcher, args.gpus, args.partition, record=False))
        return
    if args.launcher == 'none':
        counts = run_study(study, dry_run=args.dry_run)
        print(f'study {study.name}: ' + ', '.join(f'{n} {s}' for s, n in counts.items()))
        return
    if args.launcher == 'slurm' and not args.partition:
        raise SystemExit('run_study.py: --launcher slurm needs --partition')
    script = args.script or osp.join(study.work_root, f'run_{args.launcher}.sh')
    os.makedirs(osp.dirname(osp.abspath(script)), exist_ok=True)
    atomic_write_text(script, cluster_script(study, args.launcher, args.gpus, args.partition))
    print(f'study {study.name}: commands of the runs not done written to {script}; run it with '
          f'`bash {script}` from the repository root (re-run this tool to refresh it)')


if __name__ == '__main__':
    main()
