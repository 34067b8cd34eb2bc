"""Checkpoints that load without unpickling code, and carry the RNG states for exact resume."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from medtrans.registry import HOOKS
from medtrans.utils.plain_state import from_plain, to_plain
from medtrans.utils.upstream import save_checkpoint_at_step, train_loop_built

from .checkpoint_hook import checkpoint_hook_of

__all__ = ['SafeResumeHook']


@HOOKS.register_module()
class SafeResumeHook(Hook):
    """Keep the run's own checkpoints loadable with ``weights_only=True``.

    Before a checkpoint is written, the Python, numpy and torch RNG states are added, and what
    weights-only loading would refuse in everything but the model weights (``HistoryBuffer``
    objects and numpy values in the message hub, numpy RNG state, metric values kept by
    schedulers) is encoded by :func:`medtrans.utils.plain_state.to_plain`; the rest, ``meta``
    included, is stored as it is, so stock OpenMMLab tools read it. After a checkpoint is read,
    the encoded values are decoded and the RNG states restored. medtrans loads every checkpoint
    with ``weights_only=True``, so a resume file, like a weight file from outside, can never run
    code.

    A checkpoint written at an iteration that also validates is written before the validation
    (MMEngine's order) and marked ``meta['validation_pending']``, where the train loop says so
    (:meth:`~medtrans.engine.ResumableIterBasedTrainLoop.validates_after`); it is written again,
    unmarked, after the validation (MMEngine does so only when the best score improved). A run
    killed in between resumes from the marked file, and the loop validates first, so no kill
    point skips the validation's effects (the reduce-on-plateau step, the logged metrics).

    It runs last on save (priority ``LOWEST``) so that it sees what other hooks added.
    """

    priority = 'LOWEST'

    def __init__(self) -> None:
        self._loaded_rng_state = None
        self._train_rng_state = None  # set while validating
        self._saved_before_val = None  # (epoch, iter) of a checkpoint written before validation
        #: (epoch, iter) of the loaded checkpoint if it is marked ``validation_pending``: the
        #: train loop validates first (:class:`~medtrans.engine.ResumableIterBasedTrainLoop`).
        self.loaded_pending = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        validating = self._train_rng_state is not None
        # During validation (a best checkpoint) the training streams are the ones stashed.
        checkpoint['rng_state'] = self._train_rng_state if validating else _get_rng_state()
        meta = checkpoint['meta']
        # Written during validation, the checkpoint is MMEngine's own rewrite (a new best score):
        # none is needed after it.
        self._saved_before_val = None if validating else (meta['epoch'], meta['iter'])
        loop = runner.train_loop if train_loop_built(runner) else None
        validates_after = getattr(loop, 'validates_after', None)
        meta['validation_pending'] = bool(
            not validating and validates_after is not None and validates_after(meta['iter']))
        for key in _run_state_keys(checkpoint):
            checkpoint[key] = to_plain(checkpoint[key], key)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in _run_state_keys(checkpoint):
            checkpoint[key] = from_plain(checkpoint[key])
        self._loaded_rng_state = checkpoint.get('rng_state')
        meta = checkpoint.get('meta', {})
        self.loaded_pending = ((meta.get('epoch'), meta.get('iter'))
                               if meta.get('validation_pending') else None)

    def before_train(self, runner) -> None:
        # Only a resumed run (iter > 0) continues the saved random streams: a run that merely
        # starts from a checkpoint's weights (load_from) keeps the streams of its own seed.
        # The data stream matches through the sampler (each sample's own seed), or, with other
        # samplers, through MMEngine's replay of the skipped batches.
        if runner.iter > 0 and self._loaded_rng_state is not None:
            _set_rng_state(self._loaded_rng_state)
        # The loop runs a pending validation first; the checkpoint is written again after it.
        if runner.iter > 0:
            self._saved_before_val = self.loaded_pending
        else:
            self.loaded_pending = None
        self._loaded_rng_state = None

    def before_val_epoch(self, runner) -> None:
        # Validation draws from the global generators (each new DataLoader iterator draws its
        # base seed), and a resumed process draws where the original did not (persistent
        # workers start once per process). Isolating validation keeps training's random
        # streams independent of it, so a resumed run continues exactly.
        self._train_rng_state = _get_rng_state()

    def after_val_epoch(self, runner, metrics=None) -> None:
        # MMEngine writes a checkpoint due at a validation's iteration before validating, and
        # writes it again afterwards only when the best score improved. A resume from the first
        # version would skip this validation's effects (the reduce-on-plateau step, the logged
        # metrics), so write it again, as MMEngine does for a best score; this hook runs after
        # the others, so the checkpoint holds all their updates.
        checkpoint_hook = checkpoint_hook_of(runner)
        if (checkpoint_hook is not None
                and self._saved_before_val == (runner.epoch, runner.iter)):
            step = runner.epoch if checkpoint_hook.by_epoch else runner.iter
            save_checkpoint_at_step(checkpoint_hook, runner, step,
                                    dict(epoch=runner.epoch, iter=runner.iter))
        self._saved_before_val = None
        if self._train_rng_state is not None:
            _set_rng_state(self._train_rng_state)
            self._train_rng_state = None


def _run_state_keys(checkpoint: dict) -> list:
    # Everything but model weights (``state_dict``, EMAHook's ``ema_state_dict``): those are
    # tensors already, and rebuilding them would drop the ``_metadata`` that versioned modules
    # read when loading.
    return [key for key in checkpoint if not key.endswith('state_dict')]


def _get_rng_state() -> dict:
    state = dict(
        python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # The process's own device: under DDP each process sees every GPU, and rank 0 (the one
        # that saves) has drawn from its own only.
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    # MMEngine resumes with map_location set to the run's device; RNG states live on the CPU.
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        cuda_state = state['cuda']
        if isinstance(cuda_state, (list, tuple)):  # all devices' states (earlier checkpoints)
            cuda_state = cuda_state[torch.cuda.current_device()]
        torch.cuda.set_rng_state(cuda_state.cpu())
