"""Samplers that start anywhere, and samples whose augmentation depends on nothing but their seed.

A resumed run must see the batches the uninterrupted run would have seen, without decoding the
batches it skips. MMEngine's loop replays them through the data pipeline, because the random
augmentation draws from each data worker's generator, whose state depends on every sample the
worker augmented before. Here each sample carries its own seed instead, drawn from the run's seed
and the sample's position in the sampling order (:class:`SampleIndex`); a dataset with
:class:`SeededSamplesMixin` augments it under that seed. The augmentation then depends neither
on what came before nor on the number of workers, and a sampler may start at any position
(:meth:`ResumableInfiniteSampler.start_at`) and give the same samples with the same
augmentations.
"""
import contextlib
import itertools
import random
from typing import Iterator, Optional

import numpy as np
import torch
from mmengine.dataset import DefaultSampler, InfiniteSampler

from medtrans.registry import DATA_SAMPLERS

__all__ = ['SampleIndex', 'sample_seed', 'seeded_random', 'SeededSamplesMixin',
           'ResumableDefaultSampler', 'ResumableInfiniteSampler']


class SampleIndex(int):
    """A dataset index that carries the seed its sample is augmented with.

    An ``int``, so every dataset and sampler wrapper reads it as an index; it reaches the
    data workers through the DataLoader's index queue (it pickles with its seed).
    """

    def __new__(cls, index: int, seed: int) -> 'SampleIndex':
        obj = super().__new__(cls, index)
        obj.seed = seed
        return obj

    def __reduce__(self):
        return SampleIndex, (int(self), self.seed)

    def __repr__(self) -> str:
        return f'SampleIndex({int(self)}, seed={self.seed})'


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """The seed of the sample at ``position`` of epoch ``epoch``'s order (all processes').

    Mixed by numpy's ``SeedSequence``, so that neighbouring positions and seeds give
    independent streams.
    """
    return int(np.random.SeedSequence((seed, epoch, position)).generate_state(1)[0])


@contextlib.contextmanager
def seeded_random(seed: int):
    """Seed Python's, numpy's and torch's (CPU) global generators, and restore them on exit.

    Transforms draw from these global generators (mmcv's and mmpretrain's from ``random`` and
    ``np.random``, torchvision's from torch). Restoring them keeps the caller's streams as they
    were: in the main process (``num_workers=0``) those are training's. The CUDA generators are
    not touched (``torch.manual_seed`` would reseed them too).
    """
    state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed)
        torch.default_generator.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])


class SeededSamplesMixin:
    """A dataset that augments a :class:`SampleIndex` under its seed.

    ``prepare_data`` (MMEngine's ``BaseDataset``: read the annotation, run the pipeline) runs
    under :func:`seeded_random` for indices that carry a seed, and is given the plain index,
    so the sample's ``sample_idx`` stays an ``int``. Other indices (validation, a plain
    sampler) are prepared as before.
    """

    def prepare_data(self, idx):
        seed = getattr(idx, 'seed', None)
        if seed is None:
            return super().prepare_data(idx)
        with seeded_random(seed):
            return super().prepare_data(int(idx))


class _StartMixin:
    """The one-shot start position that both samplers share."""

    def _init_start(self) -> None:
        self._start = None

    def start_at(self, offset: int, epoch: int = 0) -> None:
        """Start the next pass ``offset`` samples (of this process) into epoch ``epoch``.

        The position holds for the next ``iter()`` only, whatever ``set_epoch`` is called in
        between (MMEngine's ``DistSamplerSeedHook`` sets the loop's epoch, 0 for an
        iteration-based loop, after the loop has started its first pass).
        """
        if offset < 0 or epoch < 0:
            raise ValueError(f'start_at: offset and epoch must be >= 0, got {offset}, {epoch}')
        self._start = (offset, epoch)

    def _take_start(self, epoch: int) -> tuple:
        start, self._start = self._start or (0, epoch), None
        return start


@DATA_SAMPLERS.register_module()
class ResumableDefaultSampler(_StartMixin, DefaultSampler):
    """MMEngine's ``DefaultSampler`` (the same order, epoch by epoch) whose indices carry each
    sample's seed, and which can start a pass anywhere (:meth:`start_at`).

    The seed of a sample is :func:`sample_seed` of the sampler's seed, the epoch and the
    sample's position in the order of all processes, so it does not depend on the process
    count either.
    """

    def __init__(self, dataset, shuffle: bool = True, seed: Optional[int] = None,
                 round_up: bool = True) -> None:
        super().__init__(dataset, shuffle=shuffle, seed=seed, round_up=round_up)
        self._init_start()

    def __iter__(self) -> Iterator[int]:
        offset, epoch = self._take_start(self.epoch)
        self.epoch = epoch
        indices = list(super().__iter__())
        positions = range(self.rank, self.total_size, self.world_size)
        # Seeds as the batches need them: an epoch of CheXpert is 180,000 of them.
        return (SampleIndex(index, sample_seed(self.seed, epoch, position))
                for index, position in zip(indices[offset:], positions[offset:]))


@DATA_SAMPLERS.register_module()
class ResumableInfiniteSampler(_StartMixin, InfiniteSampler):
    """MMEngine's ``InfiniteSampler`` (the same endless order) whose indices carry each sample's
    seed, and which can start anywhere in that order (:meth:`start_at`, epoch 0).

    The seed of a sample is :func:`sample_seed` of the sampler's seed and the sample's position
    in the endless order of all processes. Starting at ``offset`` draws the permutations before
    it (indices only, nothing is loaded).
    """

    def __init__(self, dataset, shuffle: bool = True, seed: Optional[int] = None) -> None:
        super().__init__(dataset, shuffle=shuffle, seed=seed)
        self._init_start()
        self.indices = None  # started by the first iter(), at its start position

    def __iter__(self) -> Iterator[int]:
        if self.indices is None or self._start is not None:
            offset, _ = self._take_start(0)
            self.indices = self._seeded_indices(offset)
        yield from self.indices

    def _seeded_indices(self, offset: int) -> Iterator[SampleIndex]:
        positions = itertools.count(offset * self.world_size + self.rank, self.world_size)
        for index, position in zip(
                itertools.islice(self._indices_of_rank(), offset, None), positions):
            yield SampleIndex(index, sample_seed(self.seed, 0, position))
