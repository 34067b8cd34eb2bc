"""Training sized in epochs but run by iteration, so that a killed run resumes at any iteration."""
from typing import Dict, Union

from mmengine.dataset import InfiniteSampler
from mmengine.dist import get_world_size
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from mmengine.runner.utils import calc_dynamic_intervals
from torch.utils.data import DataLoader

from medtrans.registry import LOOPS

__all__ = ['NoPauseIterBasedTrainLoop', 'IterBasedEpochsTrainLoop', 'epoch_length']


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


class _EpochCycler(_InfiniteDataloaderIterator):
    """MMEngine's endless iterator over the training dataloader, without the pause.

    At the end of each pass MMEngine's iterator logs a warning and sleeps 2 seconds, a 2020
    workaround for a dataloader deadlock that its maintainers could no longer reproduce
    (open-mmlab/mmcv#1912). Here the pass ends as in MMEngine (``set_epoch`` on the sampler,
    then a new pass) at once and silently.
    """

    def __next__(self):
        try:
            return next(self._iterator)
        except StopIteration:
            self._epoch += 1
            sampler = getattr(self._dataloader, 'sampler', None)
            if not hasattr(sampler, 'set_epoch'):
                sampler = getattr(getattr(self._dataloader, 'batch_sampler', None), 'sampler',
                                  None)
            if hasattr(sampler, 'set_epoch'):
                sampler.set_epoch(self._epoch)
            self._iterator = iter(self._dataloader)
            return next(self._iterator)


@LOOPS.register_module()
class NoPauseIterBasedTrainLoop(IterBasedTrainLoop):
    """MMEngine's ``IterBasedTrainLoop`` without its 2-second sleep at every epoch end.

    Only loops whose sampler ends (``DefaultSampler``, as DINO's epochs need) reach an epoch
    end; a DINO run of 300 epochs slept 10 minutes, on APTOS 2019 one epoch is 10 iterations of
    256 images. Everything else is MMEngine's loop, ``--resume`` included (the batches skipped
    to the saved iteration are drawn through the same iterator).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # MMEngine builds its iterator (and the dataloader's first pass) in __init__; the same
        # object continues with the pause-free __next__.
        self.dataloader_iterator.__class__ = _EpochCycler


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
        super().__init__(runner, dataloader, max_iters=max_epochs)
        self.epoch_length = epoch_length(self.dataloader)
        self._max_epochs = max_epochs
        self._max_iters = max_epochs * self.epoch_length
        self.val_begin = val_begin * self.epoch_length
        self.val_interval = val_interval * self.epoch_length
        self.dynamic_milestones, self.dynamic_intervals = calc_dynamic_intervals(
            self.val_interval)
