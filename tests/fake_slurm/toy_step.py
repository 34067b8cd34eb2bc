"""A stand-in for a study's step under the fake Slurm: ``--iters`` iterations of ``--seconds``,
resumed from the count in ``--state``; then ``--out`` is written (or, with ``--fail``, it exits
with status 1).

With ``--preemptible`` it acts on SIGUSR1 as ``PreemptionHook`` does: after the iteration in
progress, ``scontrol requeue`` of its Slurm job (or array task), then exit status 75. Without
it, SIGUSR1 kills it, as it kills a test or an export.
"""
import argparse
import os
import signal
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--seconds', type=float, default=0.3)
    parser.add_argument('--state', required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--preemptible', action='store_true')
    parser.add_argument('--fail', action='store_true')
    args = parser.parse_args()
    warned = []
    if args.preemptible:
        signal.signal(signal.SIGUSR1, lambda signum, frame: warned.append(signum))
    done = int(open(args.state).read()) if os.path.isfile(args.state) else 0
    if done:
        print(f'resumed at iteration {done}', flush=True)
    for iteration in range(done + 1, args.iters + 1):
        time.sleep(args.seconds)
        with open(args.state, 'w') as f:
            f.write(str(iteration))
        print(f'iteration {iteration}', flush=True)
        if warned:
            job = os.environ['SLURM_JOB_ID']
            if os.environ.get('SLURM_ARRAY_TASK_ID'):
                job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
            subprocess.run(['scontrol', 'requeue', job], check=True)
            sys.exit(75)
    if args.fail:
        sys.exit(1)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write('done\n')


if __name__ == '__main__':
    main()
