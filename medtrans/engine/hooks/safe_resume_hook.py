"""Checkpoints that load without unpickling code, and carry the RNG states for exact resume."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from medtrans.registry import HOOKS
from medtrans.utils.plain_state import from_plain, to_plain

__all__ = ['SafeResumeHook']


@HOOKS.register_module()
class SafeResumeHook(Hook):
    """Keep the run's own checkpoints loadable with ``weights_only=True``.

    Before a checkpoint is written, the message hub (``HistoryBuffer`` objects, numpy values) and
    the Python, numpy and torch RNG states are encoded as tensors and plain containers
    (:func:`medtrans.utils.plain_state.to_plain`); after a checkpoint is read they are decoded and
    the RNG states restored. medtrans loads every checkpoint with ``weights_only=True``, so a
    resume file, like a weight file from outside, can never run code.

    It runs last on save (priority ``LOWEST``) so that it sees what other hooks added.
    """

    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # During validation (a best checkpoint) the training streams are the ones stashed.
        checkpoint['rng_state'] = self._train_rng_state or _get_rng_state()
        for key in ('message_hub', 'rng_state', 'meta'):
            if key in checkpoint:
                checkpoint[key] = to_plain(checkpoint[key], key)

    def __init__(self) -> None:
        self._loaded_rng_state = None
        self._train_rng_state = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in ('message_hub', 'rng_state', 'meta'):
            if key in checkpoint:
                checkpoint[key] = from_plain(checkpoint[key])
        self._loaded_rng_state = checkpoint.get('rng_state')

    def before_train(self, runner) -> None:
        # Only a resumed run (iter > 0) continues the saved random streams: a run that merely
        # starts from a checkpoint's weights (load_from) keeps the streams of its own seed.
        # Data workers are re-seeded by MMEngine and replay the skipped batches, so the data
        # stream matches too when num_workers > 0.
        if runner.iter > 0 and self._loaded_rng_state is not None:
            _set_rng_state(self._loaded_rng_state)
        self._loaded_rng_state = None

    def before_val_epoch(self, runner) -> None:
        # Validation draws from the global generators (each new DataLoader iterator draws its
        # base seed), and a resumed process draws where the original did not (persistent
        # workers start once per process). Isolating validation keeps training's random
        # streams independent of it, so a resumed run continues exactly.
        self._train_rng_state = _get_rng_state()

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._train_rng_state is not None:
            _set_rng_state(self._train_rng_state)
            self._train_rng_state = None


def _get_rng_state() -> dict:
    state = dict(
        python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
