"""Checkpoint and requeue on a scheduler's warning signal, so that a preempted run loses nothing."""
import logging
import os
import signal
import subprocess
import threading
from typing import Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.dist import barrier, is_distributed, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from medtrans.registry import HOOKS
from medtrans.utils.upstream import save_checkpoint_at_step

from .checkpoint_hook import checkpoint_hook_of

__all__ = ['PreemptionHook', 'EXIT_PREEMPTED']

#: The exit status of a run stopped by :class:`PreemptionHook` (``EX_TEMPFAIL``: try again).
EXIT_PREEMPTED = 75


@HOOKS.register_module()
class PreemptionHook(Hook):
    """On a warning signal (Slurm's ``--signal=USR1@<seconds>`` before the time limit or a
    preemption), write a checkpoint at the end of the current iteration, ask Slurm to requeue the
    job, and exit with :data:`EXIT_PREEMPTED`; the requeued job resumes from that checkpoint
    (``--resume``), exactly.

    The signal handler only records the signal; the iteration in progress finishes. Under DDP the
    processes agree on the iteration to stop at: every ``sync_interval`` iterations they
    all-reduce whether any of them was signalled (one small collective and host read there, none
    in between), so a signal that reaches one process (e.g. only the launcher's first) stops them
    all. One process checks at every iteration, for free. The checkpoint is the
    ``CheckpointHook``'s (its name, rotation and atomic backend); one already written at that
    iteration is not written again, and one written at an iteration that validates is marked so
    that the resumed run validates first (:class:`SafeResumeHook`).

    The requeue is ``scontrol requeue <job>`` for the job (or array task) in ``SLURM_JOB_ID``
    (``SLURM_ARRAY_JOB_ID``/``SLURM_ARRAY_TASK_ID``), from the main process; outside Slurm, or with
    ``requeue=False``, the run just exits with :data:`EXIT_PREEMPTED`, for whatever runs it to
    start it again. The handlers are installed when the hook is built (so that the data workers
    the Runner forks inherit them) and the previous ones restored when training ends or stops.
    Slurm's multi-process steps should be ``srun`` tasks, which all get the signal; torchrun's
    agent does not handle SIGUSR1 (the study's Slurm jobs use ``srun``).

    Args:
        signals (Sequence[str]): Names of the signals to act on. Defaults to ``('SIGUSR1',)``
            (SIGTERM is left alone: launchers send it to stop a process group at once).
        sync_interval (int): Iterations between the agreements of several processes. Defaults
            to 10.
        requeue (bool): Whether to run ``scontrol requeue`` under Slurm. Defaults to True.
    """

    priority = 'LOWEST'  # after the CheckpointHook's own save at this iteration

    def __init__(self, signals: Sequence[str] = ('SIGUSR1', ), sync_interval: int = 10,
                 requeue: bool = True) -> None:
        self.signals = [getattr(signal, name) for name in signals]
        if sync_interval < 1:
            raise ValueError(f'PreemptionHook: sync_interval must be >= 1, got {sync_interval}')
        self.sync_interval = sync_interval
        self.requeue = requeue
        self.received: Optional[str] = None
        self._previous = {}
        # Installed when the hook is built, before the Runner forks its data workers: they
        # inherit this flag-setter (Slurm signals every process of a step), not the default
        # action, which would kill them.
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._record)
        else:
            print_log('PreemptionHook: not in the main thread, where Python takes signals: '
                      'a preemption signal will not checkpoint this run.', logger='current',
                      level=logging.WARNING)

    def _record(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name

    def _restore_handlers(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def after_train(self, runner) -> None:
        self._restore_handlers()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if not self._stop_now(runner):
            return
        iteration = runner.iter + 1  # the loop counts this iteration after the hooks
        runner.logger.warning(f'{self.received or "A signal to another process"}: stopping after '
                              f'iteration {iteration} to be resumed later.')
        checkpoint_hook = checkpoint_hook_of(runner)
        last = runner.message_hub.get_info('last_ckpt') or ''
        if checkpoint_hook is not None and not last.endswith(
                checkpoint_hook.filename_tmpl.format(iteration)):
            save_checkpoint_at_step(checkpoint_hook, runner, iteration,
                                    dict(epoch=runner.epoch, iter=iteration))
        if is_main_process() and self.requeue and os.environ.get('SLURM_JOB_ID'):
            self._requeue(runner)
        if is_distributed():
            barrier()  # the main process has written the checkpoint before any process exits
        # The run ends here, without the after_train / after_run hooks: close what they would.
        self._restore_handlers()
        runner.visualizer.close()
        raise SystemExit(EXIT_PREEMPTED)

    def _stop_now(self, runner) -> bool:
        if not is_distributed():
            return self.received is not None
        if (runner.iter + 1) % self.sync_interval:
            return False
        device = 'cuda' if torch_dist.get_backend() == 'nccl' else 'cpu'
        flag = torch.tensor([float(self.received is not None)], device=device)
        torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MAX)
        return bool(flag.item())

    @staticmethod
    def _requeue(runner) -> None:
        job = os.environ['SLURM_JOB_ID']
        if os.environ.get('SLURM_ARRAY_TASK_ID'):
            job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
        try:
            result = subprocess.run(['scontrol', 'requeue', job], capture_output=True, text=True,
                                    timeout=60)
            error = None if result.returncode == 0 else (
                f'exit status {result.returncode}: {result.stderr.strip()}')
        except (OSError, subprocess.TimeoutExpired) as err:  # no scontrol, or no answer
            error = str(err)
        if error is None:
            runner.logger.warning(f'Slurm job {job} requeued: it resumes from this checkpoint.')
        else:
            runner.logger.error(f'scontrol requeue {job} failed ({error}); resubmit the job to '
                                'resume it.')
