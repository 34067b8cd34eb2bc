"""PreemptionHook: a signal to any process stops every process after the same iteration, with
the exit status that asks for a rerun. (The whole path, checkpoint, requeue and exact resume, is
in test_exact_resume.py's ``preempt`` kill point.)"""
import json
import os
import signal
from types import SimpleNamespace

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.logging import MessageHub, MMLogger

from medtrans.engine.hooks import EXIT_PREEMPTED, PreemptionHook

WORLD = 2


def _stopped_after(hook, signalled_at=None, rank=0, iterations=20):
    """Run the hook's per-iteration check; signal this process after ``signalled_at``."""
    runner = SimpleNamespace(iter=0, epoch=0, hooks=[], logger=MMLogger.get_instance('preempt'),
                             message_hub=MessageHub.get_instance(f'preempt{rank}'),
                             visualizer=SimpleNamespace(close=lambda: None))
    hook.before_train(runner)
    try:
        for iteration in range(iterations):
            runner.iter = iteration
            if iteration + 1 == signalled_at:
                os.kill(os.getpid(), signal.SIGUSR1)
            try:
                hook.after_train_iter(runner, iteration)
            except SystemExit as stop:
                assert stop.code == EXIT_PREEMPTED
                return iteration + 1
        return None
    finally:
        hook.after_train(runner)


def test_one_process_stops_after_the_signalled_iteration():
    previous = signal.getsignal(signal.SIGUSR1)
    assert _stopped_after(PreemptionHook(requeue=False), signalled_at=7) == 7
    assert _stopped_after(PreemptionHook(requeue=False)) is None
    assert signal.getsignal(signal.SIGUSR1) is previous  # restored when stopped or done
    with pytest.raises(ValueError, match='sync_interval'):
        PreemptionHook(sync_interval=0)


def _worker(rank, port, out):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=WORLD)
    try:
        # Only process 1 is signalled, after iteration 7: both stop after iteration 10, the
        # next agreement (every 5 iterations).
        stopped = _stopped_after(PreemptionHook(sync_interval=5, requeue=False),
                                 signalled_at=7 if rank == 1 else None, rank=rank)
        with open(os.path.join(out, f'rank{rank}.json'), 'w') as f:
            json.dump(stopped, f)
    finally:
        dist.destroy_process_group()


def test_processes_agree_on_the_iteration_to_stop(free_port, tmp_path):
    mp.start_processes(_worker, args=(free_port, str(tmp_path)), nprocs=WORLD,
                       start_method='spawn')
    assert [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(WORLD)] == [10, 10]
