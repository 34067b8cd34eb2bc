"""Submit a plan to Slurm with ``sbatch``: each job on its recipe's GPUs, the cells that share
GPUs and dependencies as one job array, a cell after the pretraining whose export it reads
(``--dependency=afterok``), and preemption-safe (``--requeue`` and a warning signal on which the
run checkpoints, requeues itself and later resumes exactly).

**sbatch, not submitit.** submitit (which DINO's own launcher uses) submits pickled Python
callables; a job here is a list of shell commands (the tools the plan names), which submitit
would wrap in ``CommandFunction``: one more Python process between Slurm and the training, in
which submitit's own signal handler and checkpoint protocol (a ``checkpoint()`` method that
returns the callable to requeue) would duplicate what ``PreemptionHook`` and ``--resume`` do
inside the run, and which would have to hand the signal on. Job arrays and ``afterok``
dependencies are ``sbatch`` options (submitit reaches dependencies only through
``slurm_additional_parameters``). Plain batch scripts are readable, can be resubmitted by hand,
are what ``--dry-run`` prints, need no package on the cluster, and are tested against fake
``sbatch`` / ``squeue`` / ``sacct`` / ``scontrol`` commands.

**One submission** is a pretraining, or the cells with the same GPUs and the same unfinished
dependencies: one job array (``--array=0-K``; each task runs the job at its index of
``SLURM_ARRAY_TASK_ID``), or one job where there is one cell. A job takes one node:
``--ntasks`` = its processes, ``--gres=gpu:<GPUs>`` (none on the CPU). A step of one process
runs in the batch script itself (the batch step holds the job's GPU); a step of several runs as
``srun`` tasks, one per GPU (``--launcher slurm``: the ranks come from ``SLURM_PROCID``), not
torchrun inside one task: ``srun`` hands a signal it receives to every task, so every rank's
``PreemptionHook`` sees the warning, whereas torchrun's agent does not forward SIGUSR1 (it
would die of it).

**Preemption.** ``--signal=B:USR1@<seconds>`` warns the batch shell before the time limit.
Bash runs a trap only between commands, so each step runs in the background while the script
waits, and the trap hands the signal to the step (``srun`` on to its tasks). A training step's
``PreemptionHook`` writes a checkpoint, runs ``scontrol requeue`` and exits 75
(``EXIT_PREEMPTED``); a warning during another step (a test, an export) stops the job after that
step and requeues it from the script. A requeued job runs its script from the top: a job that
is done (its test metrics; a pretraining's export) ends at once, training resumes from its
newest checkpoint (``--resume``), tests and exports run again. ``--open-mode=append`` keeps the
log of every attempt in one file.

Scripts and logs are under ``<work_root>/slurm/``; ``submitted.json`` there maps each job to its
Slurm id, so that submitting again skips the jobs still in ``squeue`` and makes new jobs wait
for them.
"""
import json
import os
import os.path as osp
import shlex
import subprocess
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from medtrans.fileio import atomic_write_text

from .plan import Job, Plan, Step
from .record import test_metrics_path, write_record
from .scripts import job_comment

__all__ = ['SLURM_DIR', 'SUBMITTED', 'SIGNAL_SECONDS', 'SlurmOptions', 'Submission',
           'plan_submissions', 'batch_script', 'sbatch_command', 'submit_plan', 'SlurmError']

#: The folder of the batch scripts and Slurm logs, under the work root.
SLURM_DIR = 'slurm'
#: The record of submitted jobs (plan job name -> Slurm id) in :data:`SLURM_DIR`.
SUBMITTED = 'submitted.json'
#: Seconds between the warning signal and the time limit: enough to finish an iteration and
#: write a checkpoint (Slurm sends it up to a minute late).
SIGNAL_SECONDS = 300

_PREAMBLE = '''\
set -u
cd {cwd}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE="${{HF_HUB_OFFLINE:-1}}"
# srun's tasks of this job meet at this port; they get the job's CPUs per task (Slurm >= 22.05)
# only through SRUN_CPUS_PER_TASK.
export MASTER_PORT=$((20000 + SLURM_JOB_ID % 40000))
if [ -n "${{SLURM_CPUS_PER_TASK:-}}" ]; then export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK; fi
job=$SLURM_JOB_ID
if [ -n "${{SLURM_ARRAY_TASK_ID:-}}" ]; then job=${{SLURM_ARRAY_JOB_ID}}_$SLURM_ARRAY_TASK_ID; fi
# The warning (--signal=B:USR1@<seconds>) reaches this shell only, and bash runs a trap only
# between commands: each step runs in the background and the trap hands the signal on (srun to
# its tasks). A training step's PreemptionHook checkpoints, requeues the job and exits 75; after
# any other step the job requeues itself. Requeued, the job starts here again: done, it ends at
# once; training resumes from its checkpoint (--resume); tests and exports run again.
pid=
warned=
trap 'warned=1; if [ -n "$pid" ]; then kill -USR1 "$pid" 2>/dev/null; fi' USR1
run() {{
    echo '$' "$*"
    "$@" &
    pid=$!
    if [ -n "$warned" ]; then kill -USR1 "$pid" 2>/dev/null; fi
    while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
    wait "$pid"
    local status=$?
    pid=
    if [ "$status" -eq 75 ]; then exit 75; fi
    if [ -n "$warned" ]; then scontrol requeue "$job"; exit 75; fi
    if [ "$status" -ne 0 ]; then exit "$status"; fi
}}
'''


class SlurmError(RuntimeError):
    """``sbatch`` or ``squeue`` failed; the message holds its output."""


@dataclass(frozen=True)
class SlurmOptions:
    """How jobs are submitted.

    Args:
        partition (str, optional): ``--partition``. Defaults to None (the cluster's default).
        time (str, optional): ``--time`` of every job (a requeued job gets it again).
            Defaults to None (the partition's).
        account (str, optional): ``--account``. Defaults to None.
        signal_seconds (int): Seconds of warning before the time limit. Defaults to
            :data:`SIGNAL_SECONDS`.
        sbatch_args (Sequence[str]): More ``sbatch`` options (``--qos=high``,
            ``--cpus-per-task=8``...), after ours, so they win. Defaults to ().
        python (str): Python executable of the jobs. Defaults to ``'python'``.
    """

    partition: Optional[str] = None
    time: Optional[str] = None
    account: Optional[str] = None
    signal_seconds: int = SIGNAL_SECONDS
    sbatch_args: Tuple[str, ...] = ()
    python: str = 'python'

    def __post_init__(self) -> None:
        if not 0 < self.signal_seconds <= 65535:
            raise ValueError(f'signal_seconds must be in 1..65535 (Slurm), got '
                             f'{self.signal_seconds}.')


@dataclass
class Submission:
    """One ``sbatch`` call: a job, or an array of cells with the same GPUs and dependencies.

    Args:
        label (str): Its file names and Slurm job name (after the study's name).
        jobs (list[Job]): Its jobs; task ``i`` of an array runs ``jobs[i]``.
        gpus (int): GPUs of each job (0: the CPU).
        after (tuple[str]): The plan's jobs it waits for (names; those done are left out).
    """

    label: str
    jobs: List[Job]
    gpus: int
    after: Tuple[str, ...]

    @property
    def is_array(self) -> bool:
        return len(self.jobs) > 1

    def script(self, work_root: str) -> str:
        return osp.abspath(osp.join(work_root, SLURM_DIR, f'{self.label}.sh'))

    def log(self, work_root: str) -> str:
        """The log of each job (``%j`` / ``%A_%a``: Slurm fills in the job or task id)."""
        stem = f'{self.label}-%A_%a' if self.is_array else f'{self.label}-%j'
        return osp.abspath(osp.join(work_root, SLURM_DIR, f'{stem}.out'))


def _label(name: str) -> str:
    return name.replace('/', '.')


def plan_submissions(plan: Plan, queued: Sequence[str] = ()) -> List[Submission]:
    """The submissions of the plan's jobs that are neither done nor ``queued``: each pretraining
    alone, then the cells grouped by GPUs and unfinished dependencies (in plan order, so that a
    submission comes after those it waits for).

    Args:
        plan (Plan): Planned for the cluster (``gpus=None``: each recipe's own GPUs).
        queued (Sequence[str]): Names of jobs already in Slurm's queue: not submitted again.
            Defaults to ().
    """
    done = {job.name for job in plan.jobs if job.status == 'done'}
    submissions: List[Submission] = []
    arrays: Dict[Tuple[int, Tuple[str, ...]], Submission] = {}
    for job in plan.jobs:
        if job.name in done or job.name in queued:
            continue
        after = tuple(name for name in job.after if name not in done)
        if job.kind == 'pretraining':
            submissions.append(Submission(_label(job.name), [job], job.gpus, after))
            continue
        key = (job.gpus, after)
        if key not in arrays:
            where = f'{job.gpus}gpu' if job.gpus else 'cpu'
            waits = '+'.join(osp.basename(name) for name in after)
            arrays[key] = Submission(f'cells-{where}' + (f'-after-{waits}' if waits else ''),
                                     [], job.gpus, after)
            submissions.append(arrays[key])
        arrays[key].jobs.append(job)
    for submission in submissions:
        if len(submission.jobs) == 1 and submission.jobs[0].kind == 'cell':
            submission.label = _label(submission.jobs[0].name)
    return submissions


def _step_command(step: Step, python: str) -> str:
    if step.processes == 1:
        return step.command(python)
    # Not --kill-on-bad-exit: on a warning the other ranks exit 75 while the first still writes
    # the checkpoint and requeues the job, which that option would kill.
    return ' '.join(['srun', f'--ntasks={step.processes}', python, step.tool, *step.words(),
                     '--launcher slurm'])


def _job_lines(job: Job, python: str) -> List[str]:
    result = job.export if job.kind == 'pretraining' else test_metrics_path(job.work_dir)
    lines = [job_comment(job),
             f'if [ -f {shlex.quote(result)} ]; then echo {shlex.quote(job.name + ": done")}; '
             'exit 0; fi']
    return lines + [f'run {_step_command(step, python)}' for step in job.steps]


def batch_script(submission: Submission, plan: Plan, python: str = 'python',
                 cwd: Optional[str] = None) -> str:
    """The batch script of a submission (module docstring).

    Args:
        submission (Submission): From :func:`plan_submissions`.
        plan (Plan): Its plan.
        python (str): Python executable of the jobs. Defaults to ``'python'``.
        cwd (str, optional): The folder the commands run in (the repository root). Defaults
            to this process's working directory.
    """
    lines = ['#!/usr/bin/env bash',
             f'# Study {plan.study.name}, Slurm job {submission.label}: written by '
             'tools/run_study.py (docs/study.md).',
             *_PREAMBLE.format(cwd=shlex.quote(cwd or os.getcwd())).splitlines()]
    if not submission.is_array:
        lines += _job_lines(submission.jobs[0], python)
        return '\n'.join(lines) + '\n'
    lines.append('case "$SLURM_ARRAY_TASK_ID" in')
    for index, job in enumerate(submission.jobs):
        body = _job_lines(job, python)
        lines += [f'{index})', *(f'    {line}' for line in body), '    ;;']
    lines += ['*)', '    echo "task $SLURM_ARRAY_TASK_ID: no such task in this array" >&2',
              '    exit 1', '    ;;', 'esac']
    return '\n'.join(lines) + '\n'


def sbatch_command(submission: Submission, plan: Plan, options: SlurmOptions,
                   dependencies: Sequence[str] = ()) -> List[str]:
    """The ``sbatch`` command of a submission, as words.

    Args:
        submission (Submission): From :func:`plan_submissions`.
        plan (Plan): Its plan.
        options (SlurmOptions): Partition, time, account, warning, more ``sbatch`` options.
        dependencies (Sequence[str]): The Slurm ids it waits for (``afterok``). Defaults to ().
    """
    root = plan.study.work_root
    words = ['sbatch', '--parsable', f'--job-name={plan.study.name}-{submission.label}']
    words += [f'--{key}={value}' for key, value in (
        ('partition', options.partition), ('account', options.account),
        ('time', options.time)) if value]
    words += ['--nodes=1', f'--ntasks={max(submission.gpus, 1)}']
    if submission.gpus:
        words.append(f'--gres=gpu:{submission.gpus}')
    words += ['--requeue', f'--signal=B:USR1@{options.signal_seconds}', '--open-mode=append',
              f'--output={submission.log(root)}']
    if submission.is_array:
        words.append(f'--array=0-{len(submission.jobs) - 1}')
    if dependencies:
        words += [f'--dependency=afterok:{":".join(dependencies)}', '--kill-on-invalid-dep=yes']
    return words + list(options.sbatch_args) + [submission.script(root)]


def _shell(words: Sequence[str]) -> str:
    """Words as a shell command, with ``$J1``-style placeholders left to expand."""
    return ' '.join(f'"{word}"' if '$' in word else shlex.quote(word) for word in words)


def _read_submitted(path: str) -> Dict[str, str]:
    try:
        with open(path) as f:
            return dict(json.load(f))
    except FileNotFoundError:
        return {}


def _queued(submitted: Mapping[str, str],
            run: Callable[..., subprocess.CompletedProcess]) -> Dict[str, str]:
    """The submitted jobs still pending or running (squeue), name -> id."""
    if not submitted:
        return {}
    command = ['squeue', '--me', '--noheader', '--array', '--format=%i']
    out = run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise SlurmError(f'{" ".join(command)} failed (exit status {out.returncode}): '
                         f'{out.stderr.strip()}')
    listed = set(out.stdout.split())
    return {name: job_id for name, job_id in submitted.items() if job_id in listed}


def _task_ids(submission: Submission, job_id: str) -> List[str]:
    if submission.is_array:
        return [f'{job_id}_{index}' for index in range(len(submission.jobs))]
    return [job_id]


def submit_plan(plan: Plan,
                options: SlurmOptions = SlurmOptions(),
                dry_run: bool = False,
                run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                print_fn: Callable[[str], None] = print) -> Dict[str, str]:
    """Submit the jobs of a plan that are neither done nor still queued (module docstring).

    Writes each job's record, the batch scripts (``<work_root>/slurm/<label>.sh``) and
    ``submitted.json``, calls ``sbatch`` once per submission, and prints each job with its Slurm
    id. With ``dry_run``, prints the ``sbatch`` commands (``$J1``... standing for the ids) and
    the scripts instead, and neither writes nor submits anything.

    Args:
        plan (Plan): Planned for the cluster (``gpus=None``: each recipe's own GPUs).
        options (SlurmOptions): How to submit. Defaults to ``SlurmOptions()``.
        dry_run (bool): Print, submit nothing. Defaults to False.
        run (Callable): Runs a command (``subprocess.run``'s signature). Defaults to it.
        print_fn (Callable): Where the lines go. Defaults to :func:`print`.

    Returns:
        dict: Job name -> Slurm id (``<array id>_<task>`` for an array's jobs), of the jobs
        submitted now and of those still queued from before (empty for a dry run).

    Raises:
        SlurmError: ``squeue`` or an ``sbatch`` failed (the jobs submitted before it stay
            submitted and recorded).
    """
    root = plan.study.work_root
    slurm_dir = osp.join(root, SLURM_DIR)
    record_path = osp.join(slurm_dir, SUBMITTED)
    submitted = {} if dry_run else _read_submitted(record_path)
    queued = {} if dry_run else _queued(submitted, run)
    submissions = plan_submissions(plan, list(queued))
    ids: Dict[str, str] = dict(queued)
    done = sum(job.status == 'done' for job in plan.jobs)
    head = (f'study {plan.study.name}: {sum(len(s.jobs) for s in submissions)} jobs in '
            f'{len(submissions)} sbatch calls ({done} done, {len(queued)} still queued); '
            f'scripts and logs in {osp.abspath(slurm_dir)}')
    if dry_run:
        lines = ['#!/usr/bin/env bash', f'# {head} (--dry-run: nothing written or submitted)',
                 'set -euo pipefail']
        scripts = []
        for number, submission in enumerate(submissions, 1):
            dependencies = list(dict.fromkeys(ids[name] for name in submission.after))
            for name, job_id in zip((job.name for job in submission.jobs),
                                    _task_ids(submission, f'${{J{number}}}')):
                ids[name] = job_id
            lines.append(f'J{number}=$(' + _shell(
                sbatch_command(submission, plan, options, dependencies)) + ')')
            scripts += ['', f'# ==> {submission.script(root)} <==',
                        batch_script(submission, plan, options.python).rstrip('\n')]
        print_fn('\n'.join(lines + scripts))
        return {}
    if not submissions:
        print_fn(head)
        return ids
    os.makedirs(slurm_dir, exist_ok=True)
    report = []
    for submission in submissions:
        dependencies = list(dict.fromkeys(ids[name] for name in submission.after))
        for job in submission.jobs:
            write_record(job.record_path, job.record)
        atomic_write_text(submission.script(root), batch_script(submission, plan,
                                                                options.python))
        command = sbatch_command(submission, plan, options, dependencies)
        out = run(command, capture_output=True, text=True)
        job_id = out.stdout.strip().split(';')[0]
        if out.returncode != 0 or not job_id:
            raise SlurmError(f'{_shell(command)} failed (exit status {out.returncode}): '
                             f'{(out.stderr or out.stdout).strip()}')
        waits = f' (after {", ".join(dependencies)})' if dependencies else ''
        for job, task_id in zip(submission.jobs, _task_ids(submission, job_id)):
            ids[job.name] = submitted[job.name] = task_id
            report.append(f'  {task_id}  {job.name}{waits}')
        atomic_write_text(record_path, json.dumps(submitted, indent=1, sort_keys=True) + '\n')
    print_fn('\n'.join([head + ':', *report,
                        *(f'  {job_id}  {name} (still queued)' for name, job_id in
                          queued.items())]))
    return ids
