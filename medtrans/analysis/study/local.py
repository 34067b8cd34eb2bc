"""Run a plan on this machine: independent jobs side by side, each on the GPUs its recipe
needs, one live display for the whole study.

The machine's GPUs (or, on the CPU, ``max_parallel`` slots) are the units a job takes: as many
GPUs as its plan says (``CUDA_VISIBLE_DEVICES``), or one slot of CPU cores; the cores are shared
among the units (each job's CPU affinity and ``OMP_NUM_THREADS``, which the dataloaders' worker
counts follow). A job starts when the jobs it waits for are done and its units are free, in
plan order (pretrainings first: a job waiting for several GPUs is not overtaken by one-GPU jobs
that would keep them busy); at most ``max_parallel`` run at once. A job is one ``bash`` process
running its commands in order (``<work_dir>/study.log`` holds their output); a failed job does
not stop the others, but the jobs that wait for it are not started (``blocked``).
"""
import os
import os.path as osp
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from .plan import Job, Plan, job_status
from .record import write_record

__all__ = ['run_study', 'StudyOutcome', 'missing_inputs', 'LOG_NAME', 'format_duration']

#: Each job's log in its work dir.
LOG_NAME = 'study.log'


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f'{round(seconds)}s'
    minutes = round(seconds / 60)
    return f'{minutes // 60}h{minutes % 60:02d}m' if minutes >= 60 else f'{minutes}m'


@dataclass
class StudyOutcome:
    """How each job of a plan ended: ``done`` (now or before), ``failed``, ``blocked`` (a job
    it waits for failed) or ``interrupted``."""

    states: Dict[str, str]
    logs: Dict[str, str] = field(default_factory=dict)

    def names(self, state: str) -> List[str]:
        return [name for name, value in self.states.items() if value == state]

    @property
    def ok(self) -> bool:
        return all(state == 'done' for state in self.states.values())

    def report(self) -> List[str]:
        """The end of a study run: counts, then each failed job with its log."""
        counts = {}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        lines = [', '.join(f'{n} {state}' for state, n in sorted(counts.items()))]
        lines += [f'failed: {name} (log: {self.logs[name]})' for name in self.names('failed')]
        lines += [f'blocked: {name} (waits for a failed job)' for name in self.names('blocked')]
        return lines


def missing_inputs(plan: Plan) -> List[str]:
    """The weight files and data folders the plan's jobs read that do not exist (the exports of
    its pretrainings excepted: those are written by the plan)."""
    exports = {osp.normpath(job.export) for job in plan.jobs if job.kind == 'pretraining'}
    missing = {}
    for job in plan.jobs:
        if job.status == 'done':
            continue
        pretrained = job.record.get('pretrained')
        if pretrained and osp.normpath(pretrained) not in exports \
                and not osp.isfile(pretrained):
            missing[pretrained] = f'weight file {pretrained} (read by {job.name})'
        data_root = job.record.get('data_root')
        if data_root and not osp.isdir(data_root):
            missing[data_root] = f'data folder {data_root} (read by {job.name})'
    return list(missing.values())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _chunks(cores: Sequence[int], count: int) -> List[List[int]]:
    """``count`` groups of cores, as even as the cores allow (shared when there are fewer
    cores than groups)."""
    if len(cores) < count:
        return [[cores[i % len(cores)]] for i in range(count)]
    size, extra = divmod(len(cores), count)
    groups, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        groups.append(list(cores[start:end]))
        start = end
    return groups


@dataclass
class _Running:
    job: Job
    process: subprocess.Popen
    units: List[int]
    started: float
    log: object


class _Display:
    """One live view of the study (rich, on a terminal), or a plain line per event."""

    def __init__(self, plan: Plan, live: bool, print_fn: Callable[[str], None]) -> None:
        self.plan, self.print_fn, self.live = plan, print_fn, None
        if live:
            from rich.console import Console
            from rich.live import Live
            self.live = Live(console=Console(), refresh_per_second=2, transient=False)

    def __enter__(self) -> '_Display':
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def event(self, text: str, status: str) -> None:
        stamp = time.strftime('%H:%M:%S')
        if self.live is not None:
            self.live.console.print(f'[{stamp}] {text}', markup=False, highlight=False)
        else:
            self.print_fn(f'[{stamp}] {text} | {status}')

    def update(self, status: str, running: List[_Running], gpus: bool) -> None:
        if self.live is None:
            return
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text
        line = Text(f'study {self.plan.study.name}: {status}', style='bold')
        if not running:
            self.live.update(line)
            return
        table = Table(expand=False)
        table.add_column('running')
        table.add_column('GPUs' if gpus else 'slot')
        table.add_column('for', justify='right')
        now = time.monotonic()
        for item in running:
            table.add_row(item.job.name, ','.join(map(str, item.units)),
                          format_duration(now - item.started))
        self.live.update(Group(line, table))


def run_study(plan: Plan,
              gpu_ids: Sequence[str] = (),
              max_parallel: Optional[int] = None,
              python: str = sys.executable,
              live: Optional[bool] = None,
              print_fn: Callable[[str], None] = print,
              poll_s: float = 0.5) -> StudyOutcome:
    """Run the jobs of a plan that are not done, side by side (module docstring).

    Args:
        plan (Plan): From :func:`~.plan.build_plan`, for ``len(gpu_ids)`` GPUs (0: the CPU).
        gpu_ids (Sequence[str]): The GPUs to use (``CUDA_VISIBLE_DEVICES`` values); empty for
            the CPU. Defaults to ().
        max_parallel (int, optional): Jobs at once. Defaults to None: one per GPU, or one on
            the CPU.
        python (str): Python executable of the jobs. Defaults to this one.
        live (bool, optional): A live display (rich); None: where the output is a terminal.
        print_fn (Callable): Where the plain lines go. Defaults to :func:`print`.
        poll_s (float): Seconds between checks of the running jobs. Defaults to 0.5.

    Returns:
        StudyOutcome: Each job's end state and the logs.

    Raises:
        ValueError: A job needs more GPUs than given.
    """
    gpu_ids = [str(i) for i in gpu_ids]
    units = len(gpu_ids) if gpu_ids else (max_parallel or 1)
    max_parallel = max_parallel or units
    for job in plan.jobs:
        if job.gpus > len(gpu_ids):
            raise ValueError(f'{job.name} needs {job.gpus} GPUs, {len(gpu_ids)} given; plan '
                             'the study for the GPUs it runs on.')
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else list(
        range(os.cpu_count() or 1))
    core_groups = _chunks(cores, units)
    free = list(range(units))
    states = {job.name: 'done' if job.status == 'done' else 'queued' for job in plan.jobs}
    logs = {job.name: osp.join(job.work_dir, LOG_NAME) for job in plan.jobs}
    running: List[_Running] = []
    durations: List[float] = []
    queue = [job for job in plan.jobs if states[job.name] == 'queued']
    if live is None:
        live = sys.stdout.isatty()

    def status() -> str:
        counts = {state: 0 for state in ('done', 'running', 'queued', 'failed', 'blocked')}
        for state in states.values():
            counts[state] = counts.get(state, 0) + 1
        text = ', '.join(f'{n} {state}' for state, n in counts.items())
        left = counts['queued'] + counts['running']
        if durations and left:
            mean = sum(durations) / len(durations)
            text += f', ETA {format_duration(mean * left / min(max_parallel, units))}'
        return text

    def start(job: Job, taken: List[int]) -> None:
        os.makedirs(job.work_dir, exist_ok=True)
        write_record(job.record_path, job.record)
        threads = max(1, sum(len(core_groups[u]) for u in taken) // job.processes)
        env = dict(os.environ, PYTHON=python, PORT=str(_free_port()), PYTHONUNBUFFERED='1',
                   OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   CUDA_VISIBLE_DEVICES=','.join(gpu_ids[u] for u in taken) if gpu_ids else '')
        env.setdefault('HF_HUB_OFFLINE', '1')
        job_cores = sorted({core for u in taken for core in core_groups[u]})
        script = 'set -e\n' + ''.join(f'echo {shlex.quote("$ " + command)}\n{command}\n'
                                      for command in job.commands(python))
        log = open(logs[job.name], 'a')

        def pin() -> None:
            if hasattr(os, 'sched_setaffinity'):
                os.sched_setaffinity(0, job_cores)

        process = subprocess.Popen(['bash', '-c', script], stdout=log, stderr=subprocess.STDOUT,
                                   env=env, preexec_fn=pin, start_new_session=True)
        running.append(_Running(job, process, taken, time.monotonic(), log))
        states[job.name] = 'running'
        where = (f'GPU {",".join(gpu_ids[u] for u in taken)}' if gpu_ids
                 else f'{len(job_cores)} CPU core(s)')
        display.event(f'start {job.name} on {where}', status())

    def finish(item: _Running, code: int) -> None:
        item.log.close()
        running.remove(item)
        free.extend(item.units)
        free.sort()
        job = item.job
        done = code == 0 and job_status(job.kind, job.work_dir, job.export,
                                        plan.smoke) == 'done'
        if done:
            states[job.name] = 'done'
            durations.append(time.monotonic() - item.started)
            display.event(f'done {job.name} in {format_duration(durations[-1])}', status())
            return
        states[job.name] = 'failed'
        why = f'exit status {code}' if code else 'it left no result'
        display.event(f'FAILED {job.name} ({why}); log: {logs[job.name]}', status())

    with _Display(plan, live, print_fn) as display:
        display.event(f'study {plan.study.name}: {len(queue)} of {len(plan.jobs)} jobs to run, '
                      f'{len(gpu_ids) or "no"} GPUs, at most {max_parallel} at once', status())
        try:
            while queue or running:
                for job in list(queue):
                    if any(states.get(name) in ('failed', 'blocked') for name in job.after):
                        queue.remove(job)
                        states[job.name] = 'blocked'
                        display.event(f'blocked {job.name}: {", ".join(job.after)} failed',
                                      status())
                for job in list(queue):
                    if len(running) >= max_parallel:
                        break
                    if any(states.get(name, 'done') != 'done' for name in job.after):
                        continue
                    need = job.gpus if gpu_ids else 1
                    if need > len(free):
                        break  # in plan order: later one-GPU jobs must not starve it
                    taken, free[:] = free[:need], free[need:]
                    queue.remove(job)
                    start(job, taken)
                for item in list(running):
                    code = item.process.poll()
                    if code is not None:
                        finish(item, code)
                display.update(status(), running, bool(gpu_ids))
                if queue or running:
                    time.sleep(poll_s)
        except KeyboardInterrupt:
            for item in running:
                _stop(item.process)
                item.log.close()
                states[item.job.name] = 'interrupted'
            display.event('interrupted: the running jobs were stopped; run the study again to '
                          'resume them', status())
    return StudyOutcome({name: state for name, state in states.items()}, logs)


def _stop(process: subprocess.Popen) -> None:
    """Stop a job's process group (its own session: the job and the processes it started)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
