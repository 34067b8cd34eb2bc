"""A fake Slurm on this machine, for the tests of ``run_study.py --launcher slurm``:
``sbatch``, ``squeue``, ``sacct`` and ``scontrol`` (``python fake_slurm.py <command> ...``, put on
``PATH`` by :func:`install`), and the scheduler that runs the jobs (``python fake_slurm.py
scheduler``).

What it honours, as Slurm does: job arrays (``--array=0-K``: ``SLURM_ARRAY_JOB_ID``,
``SLURM_ARRAY_TASK_ID``, and a job id per task in ``SLURM_JOB_ID``), ``--dependency=afterok:``
(a job starts once every job or task it names has completed; when one fails, it is cancelled
with ``--kill-on-invalid-dep=yes``, else it stays pending with the reason
``DependencyNeverSatisfied``), ``--output`` patterns (``%j``, ``%A``, ``%a``, ``%x``; appended
to), the environment at submission (``--export=ALL``), one CPU per task (its CPU affinity; the
tasks share ``FAKE_SLURM_CPUS``, which also bounds how many run at once), and ``scontrol requeue``
(only of jobs submitted with ``--requeue``; a running task runs again after it exits).

A simulated time limit: ``FAKE_SLURM_PREEMPT`` (``<job name>[_<task>]@<text>``, comma-separated)
warns a task in its first run once its log shows ``<text>``, as ``--signal=B:USR1@<s>`` would
(SIGUSR1 to the batch shell); a job without that option is killed instead (``TIMEOUT``), and so
is a warned one that has not ended ``FAKE_SLURM_GRACE`` seconds later. State lives in
``FAKE_SLURM_DIR`` (``state.json``, under a lock; each job's script copied there at submission,
as Slurm keeps it).
"""
import argparse
import contextlib
import fcntl
import json
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, Iterator, List

PENDING, RUNNING, COMPLETED, FAILED = 'PENDING', 'RUNNING', 'COMPLETED', 'FAILED'
CANCELLED, TIMEOUT = 'CANCELLED', 'TIMEOUT'
ENDED = (COMPLETED, FAILED, CANCELLED, TIMEOUT)
FIRST_ID = 1000


def install(bin_dir: str) -> None:
    """Write ``sbatch``, ``squeue``, ``sacct`` and ``scontrol`` into ``bin_dir``: each runs this
    file with this Python."""
    os.makedirs(bin_dir, exist_ok=True)
    for command in ('sbatch', 'squeue', 'sacct', 'scontrol'):
        path = osp.join(bin_dir, command)
        with open(path, 'w') as f:
            f.write(f'#!/bin/sh\nexec "{sys.executable}" "{osp.abspath(__file__)}" {command} '
                    '"$@"\n')
        os.chmod(path, 0o755)


def _dir() -> str:
    return os.environ['FAKE_SLURM_DIR']


@contextlib.contextmanager
def _state() -> Iterator[dict]:
    """The state, locked; written back when the block ends without an error."""
    os.makedirs(_dir(), exist_ok=True)
    with open(osp.join(_dir(), 'state.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = osp.join(_dir(), 'state.json')
        state = {'next_id': FIRST_ID, 'jobs': [], 'requeues': []}
        if osp.isfile(path):
            with open(path) as f:
                state = json.load(f)
        yield state
        with open(path + '.tmp', 'w') as f:
            json.dump(state, f, indent=1)
        os.replace(path + '.tmp', path)


def read_state() -> dict:
    with _state() as state:
        return state


def _fail(command: str, message: str) -> None:
    print(f'{command}: error: {message}', file=sys.stderr)
    sys.exit(1)


def _tasks(state: dict) -> Iterator[dict]:
    for job in state['jobs']:
        yield from job['tasks']


def _find(state: dict, job_id: str) -> List[dict]:
    """The tasks a Slurm id names: a job (all its tasks), an array task ``<id>_<i>``, or a
    task's own job id."""
    for job in state['jobs']:
        if job['id'] == job_id:
            return job['tasks']
        for task in job['tasks']:
            if job_id in (task['id'], task['job_id']):
                return [task]
    return []


def sbatch(argv: List[str]) -> None:
    parser = argparse.ArgumentParser(prog='sbatch', add_help=False)
    parser.add_argument('--parsable', action='store_true')
    for option in ('--job-name', '--partition', '--account', '--time', '--nodes', '--ntasks',
                   '--gres', '--signal', '--open-mode', '--output', '--array', '--dependency',
                   '--kill-on-invalid-dep', '--qos', '--cpus-per-task'):
        parser.add_argument(option)
    parser.add_argument('--requeue', action='store_true')
    parser.add_argument('script')
    args = parser.parse_args(argv)  # an option this fake does not know: exit status 2
    if args.signal is not None and not re.fullmatch(r'(B:)?USR1@\d+', args.signal):
        _fail('sbatch', f'--signal={args.signal}: this fake takes [B:]USR1@<seconds>')
    indices = [0]
    if args.array is not None:
        found = re.fullmatch(r'(\d+)-(\d+)', args.array)
        if not found:
            _fail('sbatch', f'--array={args.array}: this fake takes <first>-<last>')
        indices = list(range(int(found.group(1)), int(found.group(2)) + 1))
    after = []
    if args.dependency is not None:
        if not args.dependency.startswith('afterok:'):
            _fail('sbatch', f'--dependency={args.dependency}: this fake takes afterok:<ids>')
        after = args.dependency[len('afterok:'):].split(':')
    with _state() as state:
        for job_id in after:
            if not _find(state, job_id):
                _fail('sbatch', 'Job dependency problem')
        first = state['next_id']
        state['next_id'] += len(indices)
        script = osp.join(_dir(), f'job{first}.sh')
        shutil.copyfile(args.script, script)
        array = args.array is not None
        job = dict(id=str(first), name=args.job_name or osp.basename(args.script),
                   script=script, cwd=os.getcwd(), env=dict(os.environ), array=array,
                   after=after, kill_on_invalid_dep=args.kill_on_invalid_dep == 'yes',
                   requeue=args.requeue, signal=args.signal,
                   output=args.output or osp.join(os.getcwd(), 'slurm-%j.out'),
                   ntasks=int(args.ntasks or 1), gres=args.gres, tasks=[])
        for n, index in enumerate(indices):
            job['tasks'].append(dict(
                id=f'{first}_{index}' if array else str(first), job_id=str(first + n),
                index=index if array else None, state=PENDING, reason='None', restarts=0,
                exit_code=None, pid=None, requeue_on_exit=False, warned=False, log=None))
        state['jobs'].append(job)
    print(first if args.parsable else f'Submitted batch job {first}')


def squeue(argv: List[str]) -> None:
    parser = argparse.ArgumentParser(prog='squeue', add_help=False)
    parser.add_argument('--me', action='store_true')
    parser.add_argument('--noheader', '-h', action='store_true')
    parser.add_argument('--array', '-r', action='store_true')
    parser.add_argument('--format', '-o', default='%i %j %T %r')
    args = parser.parse_args(argv)
    if not args.array:
        _fail('squeue', 'this fake lists array tasks one by one only (--array)')
    state = read_state()
    if not args.noheader:
        print(args.format.replace('%i', 'JOBID').replace('%j', 'NAME').replace('%T', 'STATE')
              .replace('%r', 'REASON'))
    for job in state['jobs']:
        for task in job['tasks']:
            if task['state'] in (PENDING, RUNNING):
                print(args.format.replace('%i', task['id']).replace('%j', job['name'])
                      .replace('%T', task['state']).replace('%r', task['reason']))


def sacct(argv: List[str]) -> None:
    """``sacct --noheader --parsable2 --allocations --jobs=ID[,ID] --format=JobID,State,...``"""
    parser = argparse.ArgumentParser(prog='sacct', add_help=False)
    parser.add_argument('--noheader', '-n', action='store_true')
    parser.add_argument('--parsable2', '-P', action='store_true')
    parser.add_argument('--allocations', '-X', action='store_true')
    parser.add_argument('--jobs', '-j', required=True)
    parser.add_argument('--format', '-o', default='JobID,JobName,State,ExitCode')
    args = parser.parse_args(argv)
    if not (args.parsable2 and args.allocations):
        _fail('sacct', 'this fake prints --parsable2 --allocations only')
    state = read_state()
    fields = args.format.split(',')
    if not args.noheader:
        print('|'.join(fields))
    for job_id in args.jobs.split(','):
        for task in _find(state, job_id):
            job = next(j for j in state['jobs'] if task in j['tasks'])
            code = task['exit_code']
            values = dict(JobID=task['id'], JobName=job['name'], State=task['state'],
                          ExitCode='' if code is None else f'{code}:0',
                          Restarts=str(task['restarts']))
            print('|'.join(values[field] for field in fields))


def scontrol(argv: List[str]) -> None:
    if len(argv) != 2 or argv[0] != 'requeue':
        _fail('scontrol', f'this fake runs `scontrol requeue <id>` only, not {argv}')
    with _state() as state:
        tasks = _find(state, argv[1])
        if not tasks:
            _fail('scontrol', f'requeue {argv[1]}: Invalid job id specified')
        for task in tasks:
            job = next(j for j in state['jobs'] if task in j['tasks'])
            if not job['requeue']:
                _fail('scontrol', f'requeue {argv[1]}: job not requeueable (no --requeue)')
            if task['state'] == RUNNING:
                task['requeue_on_exit'] = True
            elif task['state'] in ENDED:
                task.update(state=PENDING, reason='BeginTime')
        state['requeues'].append(argv[1])


def _fill(pattern: str, job: dict, task: dict) -> str:
    return (pattern.replace('%A', job['id']).replace('%a', str(task['index']))
            .replace('%j', task['job_id']).replace('%x', job['name']))


class Scheduler:
    """Runs the ready tasks, one CPU each (module docstring), until SIGTERM."""

    def __init__(self) -> None:
        cpus = os.environ.get('FAKE_SLURM_CPUS')
        self.free = ([int(c) for c in cpus.split(',')] if cpus
                     else sorted(os.sched_getaffinity(0)))
        self.processes: Dict[str, subprocess.Popen] = {}
        self.cpu_of: Dict[str, int] = {}
        self.warned_at: Dict[str, float] = {}
        self.timed_out = set()
        self.grace = float(os.environ.get('FAKE_SLURM_GRACE', '120'))
        self.preempt = [spec.split('@', 1) for spec in
                        os.environ.get('FAKE_SLURM_PREEMPT', '').split(',') if spec]
        self.stopping = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        while not self.stopping:
            with _state() as state:
                self._step(state)
            time.sleep(0.05)
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _stop(self, signum, frame) -> None:
        self.stopping = True

    def _step(self, state: dict) -> None:
        for job in state['jobs']:
            for task in job['tasks']:
                if task['state'] == RUNNING:
                    self._watch(job, task)
        for job in state['jobs']:
            pending = [t for t in job['tasks'] if t['state'] == PENDING]
            if not pending:
                continue
            waits_for = [t for job_id in job['after'] for t in _find(state, job_id)]
            never = any(t['state'] in (FAILED, CANCELLED, TIMEOUT) for t in waits_for)
            ready = all(t['state'] == COMPLETED for t in waits_for)
            for task in pending:
                if never and job['kill_on_invalid_dep']:
                    task.update(state=CANCELLED, reason='DependencyNeverSatisfied')
                elif never or not ready:
                    task['reason'] = 'DependencyNeverSatisfied' if never else 'Dependency'
                elif self.free:
                    self._start(job, task)
                else:
                    task['reason'] = 'Resources'

    def _start(self, job: dict, task: dict) -> None:
        cpu = self.free.pop(0)
        env = dict(job['env'], SLURM_JOB_ID=task['job_id'], SLURM_JOBID=task['job_id'],
                   SLURM_JOB_NAME=job['name'], SLURM_NTASKS=str(job['ntasks']),
                   SLURM_JOB_NUM_NODES='1', SLURM_NODELIST='localhost',
                   SLURM_SUBMIT_DIR=job['cwd'], SLURM_RESTART_COUNT=str(task['restarts']),
                   SLURM_CPUS_ON_NODE='1')
        if job['array']:
            env.update(SLURM_ARRAY_JOB_ID=job['id'], SLURM_ARRAY_TASK_ID=str(task['index']),
                       SLURM_ARRAY_TASK_COUNT=str(len(job['tasks'])))
        task['log'] = _fill(job['output'], job, task)
        os.makedirs(osp.dirname(task['log']), exist_ok=True)
        with open(task['log'], 'a') as log:
            process = subprocess.Popen(
                ['bash', job['script']], cwd=job['cwd'], env=env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=lambda: os.sched_setaffinity(0, [cpu]))
        self.processes[task['id']] = process
        self.cpu_of[task['id']] = cpu
        task.update(state=RUNNING, reason='None', pid=process.pid)

    def _watch(self, job: dict, task: dict) -> None:
        process = self.processes[task['id']]
        code = process.poll()
        if code is None:
            self._time_limit(job, task, process)
            return
        del self.processes[task['id']]
        self.free.append(self.cpu_of.pop(task['id']))
        self.free.sort()
        task['exit_code'] = code
        if task['requeue_on_exit']:
            task.update(state=PENDING, reason='BeginTime', requeue_on_exit=False,
                        restarts=task['restarts'] + 1)
        elif task['id'] in self.timed_out:
            task['state'] = TIMEOUT
        else:
            task['state'] = COMPLETED if code == 0 else FAILED

    def _time_limit(self, job: dict, task: dict, process: subprocess.Popen) -> None:
        """The simulated time limit of the task ``FAKE_SLURM_PREEMPT`` names: a warning once
        its log shows the text, the end ``FAKE_SLURM_GRACE`` seconds later."""
        since = self.warned_at.get(task['id'])
        if since is not None:
            if time.monotonic() - since > self.grace and task['id'] not in self.timed_out:
                self._kill(task, process)
            return
        texts = [text for name, text in self.preempt
                 if name in (job['name'], f"{job['name']}_{task['index']}")]
        if not texts or task['restarts']:
            return
        with open(task['log'], errors='replace') as f:
            log = f.read()
        if not any(text in log for text in texts):
            return
        self.warned_at[task['id']] = time.monotonic()
        if job['signal'] and job['signal'].startswith('B:'):
            os.kill(process.pid, signal.SIGUSR1)
            task['warned'] = True
        else:  # no warning asked for (or for job steps only, of which this fake has none)
            self._kill(task, process)

    def _kill(self, task: dict, process: subprocess.Popen) -> None:
        self.timed_out.add(task['id'])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    command, argv = sys.argv[1], sys.argv[2:]
    commands = dict(sbatch=sbatch, squeue=squeue, sacct=sacct, scontrol=scontrol,
                    scheduler=lambda argv: Scheduler().run())
    commands[command](argv)


if __name__ == '__main__':
    main()
