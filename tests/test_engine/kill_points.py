"""Test plugin: a hook that SIGKILLs its own process at the point ``MEDTRANS_KILL_POINT`` names,
or, for ``preempt:<i>``, sends it and its data workers SIGUSR1 after iteration ``i`` (a Slurm
warning, on which :class:`~medtrans.engine.hooks.PreemptionHook` checkpoints and exits).

``train:<i>``: inside the training step of iteration ``i`` (1-based, as logged), in the model's
forward pass. ``val:<i>``: in the validation after iteration ``i``, after its first batch.
``rewrite:<i>``: while the checkpoint of iteration ``i`` is written again after that validation
(by MMEngine's ``CheckpointHook`` for a new best score, else by
:class:`~medtrans.engine.hooks.SafeResumeHook`), as soon as the atomic writer's temporary file
appears; the kill then lands while it is written or synced (tens of MB), and the test asserts
that the temporary file was left, so a kill that came too late fails rather than passes.
"""
import multiprocessing
import os
import signal
import threading
import time

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from medtrans.registry import HOOKS


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillPointHook(Hook):

    priority = 'VERY_LOW'  # after the CheckpointHook's validation work, before SafeResumeHook

    def __init__(self) -> None:
        point, _, iteration = os.environ['MEDTRANS_KILL_POINT'].partition(':')
        self.point, self.iteration = point, int(iteration)
        self.armed = False

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.register_forward_pre_hook(lambda *_: _kill() if self.armed else None)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.armed = self.point == 'train' and runner.iter + 1 == self.iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.armed = False
        if self.point == 'preempt' and runner.iter + 1 == self.iteration:
            # Every process of the step, as Slurm signals them: data workers too.
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGUSR1)
            os.kill(os.getpid(), signal.SIGUSR1)

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.point == 'val' and runner.iter == self.iteration:
            _kill()

    def before_val_epoch(self, runner) -> None:
        # The checkpoint is written again after the validation: by MMEngine's CheckpointHook
        # when the best score improved, else by SafeResumeHook.
        if self.point == 'rewrite' and runner.iter == self.iteration:
            work_dir, prefix = runner.work_dir, f'.iter_{self.iteration}.pth.'

            def watch():
                while not any(name.startswith(prefix) for name in os.listdir(work_dir)):
                    time.sleep(0.0002)
                _kill()

            threading.Thread(target=watch, daemon=True).start()
