"""Training sized in epochs but run by iteration, so that a killed run resumes at any iteration."""
from typing import Dict, Iterator, Union

from mmengine.dataset import InfiniteSampler
from mmengine.dist import get_world_size
from mmengine.runner import IterBasedTrainLoop
from torch.utils.data import DataLoader

from medtrans.registry import LOOPS
from medtrans.utils.upstream import build_loop_dataloader, started_dataloader_pass

__all__ = ['NoPauseIterBasedTrainLoop', 'IterBasedEpochsTrainLoop', 'EpochCycler', 'epoch_length']


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
                         "sampler=dict(type='DefaultSampler', shuffle=True).")
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
    no longer reproduce (open-mmlab/mmcv#1912); this one goes on at once and silently.

    Args:
        dataloader (DataLoader): The dataloader.
        first_pass (Iterator): The dataloader's iterator of its first pass, already started
            (MMEngine's loop starts it when it is built), continued as epoch 0.
    """

    def __init__(self, dataloader: DataLoader, first_pass: Iterator) -> None:
        self.dataloader = dataloader
        self.epoch = 0
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
            self._pass = iter(self.dataloader)
            return next(self._pass)


@LOOPS.register_module()
class NoPauseIterBasedTrainLoop(IterBasedTrainLoop):
    """MMEngine's ``IterBasedTrainLoop`` without its 2-second sleep at every epoch end.

    Only loops whose sampler ends (``DefaultSampler``, as DINO's epochs need) reach an epoch
    end; a DINO run of 300 epochs slept 10 minutes, on APTOS 2019 one epoch is 10 iterations of
    256 images. The batches come from an :class:`EpochCycler`, which draws the same batches as
    MMEngine's iterator; everything else is MMEngine's loop, ``--resume`` included (the batches
    skipped to the saved iteration are drawn through the same iterator).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # MMEngine's __init__ has started the dataloader's first pass (workers, base seed):
        # the cycler continues that pass rather than start another.
        self.dataloader_iterator = EpochCycler(self.dataloader, started_dataloader_pass(self))


@LOOPS.register_module()
class IterBasedEpochsTrainLoop(NoPauseIterBasedTrainLoop):
    """:class:`NoPauseIterBasedTrainLoop` with its length and validation interval in epochs.

    Schedules written in epochs (DINO's 300 epochs, 10 warm-up epochs) then need no dataset
    size in the config: the loop runs ``max_epochs * epoch_length`` iterations, where
    :func:`epoch_length` is the per-process length of the training dataloader. Everything else
    is the iteration-based loop's: checkpoints by iteration, and ``--resume`` continues exactly
    at the saved iteration (an epoch-based loop would restart the epoch). Use a
    ``DefaultSampler`` with ``persistent_workers=True``, so that the data loader's workers keep
    their random streams across epochs and a resumed run replays them.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The training dataloader or its config.
        max_epochs (int): Training length in epochs.
        val_begin (int): Epoch after which validation begins. Defaults to 1.
        val_interval (int): Validation interval in epochs. Defaults to 1.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 max_epochs: int,
                 val_begin: int = 1,
                 val_interval: int = 1) -> None:
        if not isinstance(max_epochs, int) or isinstance(max_epochs, bool) or max_epochs < 1:
            raise ValueError(f'IterBasedEpochsTrainLoop: max_epochs must be a positive int, got '
                             f'{max_epochs!r}')
        dataloader = build_loop_dataloader(runner, dataloader)
        self.epoch_length = epoch_length(dataloader)
        self._num_epochs = max_epochs
        super().__init__(runner, dataloader, max_iters=max_epochs * self.epoch_length,
                         val_begin=val_begin * self.epoch_length,
                         val_interval=val_interval * self.epoch_length)

    @property
    def max_epochs(self) -> int:
        """int: Training length in epochs (MMEngine's iteration-based loop counts 1)."""
        return self._num_epochs
