"""Iteration-based training loops that resume exactly from any checkpoint without reading the
skipped batches again, sized in iterations or in epochs."""
import bisect
import logging
from typing import Dict, Iterator, List, Optional, Tuple, Union

import torch
from mmengine.dataset import InfiniteSampler
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from torch.utils.data import DataLoader

from medtrans.datasets.samplers import (
    ResumableDefaultSampler,
    ResumableInfiniteSampler,
    SeededSamplesMixin,
)
from medtrans.fileio import checkpoint_meta
from medtrans.registry import LOOPS
from medtrans.utils.upstream import build_loop_dataloader, started_dataloader_pass

__all__ = ['ResumableIterBasedTrainLoop', 'IterBasedEpochsTrainLoop', 'EpochCycler',
           'epoch_length']


def epoch_length(dataloader: DataLoader) -> int:
    """Iterations in one pass over the training set: ``len(dataloader)`` in each process.

    It is the length MMEngine's parameter schedulers use for ``convert_to_iter_based``, so the
    schedules given in epochs agree. With ``DefaultSampler`` every process holds its share of the
    set; an ``InfiniteSampler`` reports the whole set in every process, so it is refused when
    several processes train.

    Raises:
        ValueError: An ``InfiniteSampler`` under several processes, or an empty epoch.
    """
    sampler = getattr(dataloader, 'sampler', None)
    if isinstance(sampler, InfiniteSampler) and get_world_size() > 1:
        raise ValueError('An epoch length is needed, but the training dataloader uses '
                         "InfiniteSampler, whose length counts every process's images; use "
                         "sampler=dict(type='ResumableDefaultSampler', shuffle=True).")
    length = len(dataloader)
    if length == 0:
        raise ValueError(f'The training set ({len(dataloader.dataset)} images) holds no full '
                         f'batch of {dataloader.batch_size} per process; an epoch would be empty.')
    return length


class EpochCycler:
    """An endless iterator over a dataloader: pass after pass, without a pause.

    It draws what MMEngine's iterator of ``IterBasedTrainLoop`` draws: at the end of a pass it
    counts an epoch, calls ``set_epoch`` on the sampler (or the batch sampler's), so that each
    pass is a new shuffle, and starts the next pass. MMEngine's iterator also logs a warning and
    sleeps 2 seconds there, a 2020 workaround for a dataloader deadlock that its maintainers could
    no longer reproduce (open-mmlab/mmcv#1912); this one goes on at once and silently. A new
    pass draws its workers' base seed with the global generator restored afterwards, so that
    training's random streams do not depend on where passes start (a resumed run starts its
    first pass elsewhere).

    Args:
        dataloader (DataLoader): The dataloader.
        first_pass (Iterator): The dataloader's iterator of its first pass, already started
            (MMEngine's loop starts it when it is built), continued as epoch ``first_epoch``.
        first_epoch (int): The epoch of the first pass. Defaults to 0.
    """

    def __init__(self, dataloader: DataLoader, first_pass: Iterator, first_epoch: int = 0) -> None:
        self.dataloader = dataloader
        self.epoch = first_epoch
        self._pass = first_pass

    def __iter__(self) -> 'EpochCycler':
        return self

    def __next__(self):
        try:
            return next(self._pass)
        except StopIteration:
            self.epoch += 1
            sampler = getattr(self.dataloader, 'sampler', None)
            if not hasattr(sampler, 'set_epoch'):
                sampler = getattr(getattr(self.dataloader, 'batch_sampler', None), 'sampler',
                                  None)
            if hasattr(sampler, 'set_epoch'):
                sampler.set_epoch(self.epoch)
            with torch.random.fork_rng(devices=[]):
                self._pass = iter(self.dataloader)
            return next(self._pass)


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """MMEngine's ``IterBasedTrainLoop``, resumed exactly without replaying data or skipping a
    validation, and without the 2-second pause at every epoch end.

    * **Resume without replaying data.** MMEngine's loop reads every batch before the resumed
      iteration through the data pipeline again (a DINO run resumed near its end decodes the
      dataset hundreds of times). Run by :class:`~medtrans.engine.MedtransRunner`, which knows
      the checkpoint before the loop is built, the loop starts its sampler at the resumed
      iteration instead: a :class:`~medtrans.datasets.ResumableInfiniteSampler` or
      :class:`~medtrans.datasets.ResumableDefaultSampler` over a dataset with
      :class:`~medtrans.datasets.SeededSamplesMixin`, whose samples are augmented under seeds
      of their own, so the batches are those of the uninterrupted run. With any other sampler
      or dataset, or the plain Runner (which names the checkpoint only after the loop has
      started its pass), the loop replays as MMEngine's does, and logs why.
    * **A pending validation runs first.** A checkpoint written at an iteration that validates
      is written before the validation (MMEngine's order) and marked ``validation_pending``
      (:class:`~medtrans.engine.hooks.SafeResumeHook`, which writes it again, unmarked, after
      the validation). A run resumed from a marked checkpoint, i.e. killed during that
      validation or while the checkpoint was rewritten, validates first, with the random
      streams of the uninterrupted run, then trains on (with the plain Runner too: the mark is
      read by ``SafeResumeHook``, in every runtime).
    * **No pause.** Only loops whose sampler ends (``DefaultSampler``, as DINO's epochs need)
      reach an epoch end; a DINO run of 300 epochs slept 10 minutes there. The batches come from
      an :class:`EpochCycler`, which draws the same batches as MMEngine's iterator.

    Args: as :class:`mmengine.runner.IterBasedTrainLoop`.
    """

    def __init__(self, runner, dataloader: Union[DataLoader, Dict], max_iters: int,
                 val_begin: int = 1, val_interval: int = 1000,
                 dynamic_intervals: Optional[List[Tuple[int, int]]] = None) -> None:
        dataloader = build_loop_dataloader(runner, dataloader)
        checkpoint = getattr(runner, 'resume_from', None)
        #: The iteration the sampler starts at (the checkpoint's, read before the workers start).
        self._resume_iter = int(checkpoint_meta(checkpoint).get('iter', 0)) if checkpoint else 0
        self._replay_reason, first_epoch = _start_sampler(dataloader, self._resume_iter)
        super().__init__(runner, dataloader, max_iters=max_iters, val_begin=val_begin,
                         val_interval=val_interval, dynamic_intervals=dynamic_intervals)
        # MMEngine's __init__ has started the dataloader's first pass (workers, base seed) at
        # the sampler's start: the cycler continues that pass rather than start another.
        self.dataloader_iterator = EpochCycler(self.dataloader, started_dataloader_pass(self),
                                               first_epoch)

    def validates_after(self, iteration: int) -> bool:
        """Whether the loop validates once ``iteration`` iterations are done (MMEngine's rule,
        dynamic intervals included)."""
        interval = self.dynamic_intervals[bisect.bisect(self.dynamic_milestones, iteration + 1)
                                          - 1]
        return (self.runner.val_loop is not None and iteration >= self.val_begin
                and (iteration % interval == 0 or iteration == self._max_iters))

    def run(self) -> torch.nn.Module:
        """MMEngine's ``run``, with the resume above: no replay where the sampler started at the
        resumed iteration, and a pending validation first."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            if self._resume_iter == 0 or self._replay_reason is not None:
                reason = self._replay_reason or ('the Runner named no checkpoint before the '
                                                 'loop was built (MedtransRunner does)')
                print_log(f'Advance dataloader {self._iter} steps to skip data that has already '
                          f'been trained: {reason}', logger='current', level=logging.WARNING)
                for _ in range(self._iter):
                    next(self.dataloader_iterator)
            elif self._iter == self._resume_iter:
                print_log(f'Resumed at iteration {self._iter}: the sampler starts there, no '
                          'batch is read again.', logger='current')
            else:
                raise RuntimeError(
                    f'The sampler was started at iteration {self._resume_iter} (the checkpoint '
                    f'{self.runner.resume_from}), but the run resumed at {self._iter}.')
            # A checkpoint written before its validation (SafeResumeHook's mark): validate first.
            if any(getattr(hook, 'loaded_pending', None) == (self._epoch, self._iter)
                   for hook in self.runner.hooks):
                print_log(f'The validation at iteration {self._iter} did not finish before the '
                          'run stopped: validating first.', logger='current')
                self.runner.val_loop.run()
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if self.validates_after(self._iter):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model


def _start_sampler(dataloader: DataLoader, iteration: int) -> Tuple[Optional[str], int]:
    """Start the dataloader's sampler at ``iteration``'s batch: the reason it cannot (or None)
    and the epoch it starts in."""
    if iteration == 0:
        return None, 0
    sampler, dataset = dataloader.sampler, dataloader.dataset
    if not isinstance(sampler, (ResumableDefaultSampler, ResumableInfiniteSampler)):
        return (f'{type(sampler).__name__} cannot start mid-order; use ResumableInfiniteSampler '
                'or ResumableDefaultSampler'), 0
    if not isinstance(dataset, SeededSamplesMixin):
        return (f'{type(dataset).__name__} does not augment samples under their own seeds '
                '(SeededSamplesMixin)'), 0
    if dataloader.batch_size is None:
        return 'the dataloader has a batch sampler of its own', 0
    if isinstance(sampler, ResumableInfiniteSampler):
        sampler.start_at(iteration * dataloader.batch_size)
        return None, 0
    epoch, batch = divmod(iteration, len(dataloader))
    sampler.start_at(batch * dataloader.batch_size, epoch)
    return None, epoch


@LOOPS.register_module()
class IterBasedEpochsTrainLoop(ResumableIterBasedTrainLoop):
    """:class:`ResumableIterBasedTrainLoop` with its length and validation interval in epochs.

    Schedules written in epochs (DINO's 300 epochs, 10 warm-up epochs) then need no dataset
    size in the config: the loop runs ``max_epochs * epoch_length`` iterations, where
    :func:`epoch_length` is the per-process length of the training dataloader. Everything else
    is the iteration-based loop's: checkpoints by iteration, and ``--resume`` continues exactly
    at the saved iteration (an epoch-based loop would restart the epoch) without reading the
    skipped batches, with a :class:`~medtrans.datasets.ResumableDefaultSampler`.

    ``max_iters`` cuts a run short (``tools/train.py --iters N``): it runs that many
    iterations, while its schedules, validation and checkpoints keep their epochs.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The training dataloader or its config.
        max_epochs (int): Training length in epochs.
        val_begin (int): Epoch after which validation begins. Defaults to 1.
        val_interval (int): Validation interval in epochs. Defaults to 1.
        max_iters (int, optional): Training length in iterations instead of ``max_epochs``
            epochs. Defaults to None.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 max_epochs: int,
                 val_begin: int = 1,
                 val_interval: int = 1,
                 max_iters: Optional[int] = None) -> None:
        for name, value in (('max_epochs', max_epochs), ('max_iters', max_iters)):
            if (value is not None or name == 'max_epochs') and (
                    not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f'IterBasedEpochsTrainLoop: {name} must be a positive int, '
                                 f'got {value!r}')
        dataloader = build_loop_dataloader(runner, dataloader)
        self.epoch_length = epoch_length(dataloader)
        self._num_epochs = max_epochs
        super().__init__(runner, dataloader,
                         max_iters=max_iters or max_epochs * self.epoch_length,
                         val_begin=val_begin * self.epoch_length,
                         val_interval=val_interval * self.epoch_length)

    @property
    def max_epochs(self) -> int:
        """int: Training length in epochs (MMEngine's iteration-based loop counts 1)."""
        return self._num_epochs
