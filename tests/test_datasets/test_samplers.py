"""The resumable samplers give MMEngine's order, seeds that depend on nothing but the run's seed
and the position, and start anywhere in that order; a seeded sample is augmented the same
whatever the generators' state before."""
import itertools
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.dataset import BaseDataset, DefaultSampler, InfiniteSampler

from medtrans.datasets import (
    ResumableDefaultSampler,
    ResumableInfiniteSampler,
    SampleIndex,
    SeededSamplesMixin,
)
from medtrans.datasets.samplers import sample_seed, seeded_random


@pytest.fixture
def world(monkeypatch):
    """Set the (rank, world size) the samplers read when they are built."""

    def set_world(rank, size):
        monkeypatch.setattr('mmengine.dataset.sampler.get_dist_info', lambda: (rank, size))

    return set_world


def _pairs(indices):
    return [(int(i), i.seed) for i in indices]


@pytest.mark.parametrize('size', [1, 2, 3])
def test_default_sampler_order_and_seeds(world, size):
    dataset = list(range(11))
    for epoch in (0, 4):
        everyone = []
        for rank in range(size):
            world(rank, size)
            reference = DefaultSampler(dataset, shuffle=True, seed=5)
            reference.set_epoch(epoch)
            sampler = ResumableDefaultSampler(dataset, shuffle=True, seed=5)
            sampler.set_epoch(epoch)
            indices = list(sampler)
            assert [int(i) for i in indices] == list(reference)  # MMEngine's order
            # The seed of position p (in the order of all processes) is sample_seed(5, epoch, p).
            positions = range(rank, reference.total_size, size)
            assert [i.seed for i in indices] == [sample_seed(5, epoch, p) for p in positions]
            everyone += list(zip(positions, _pairs(indices)))
        # Each position of the padded order once, whatever the process count.
        assert sorted(p for p, _ in everyone) == list(range(len(everyone)))


def test_seeds_do_not_depend_on_the_process_count(world):
    # 12 samples: no padding, so one process and three see the same (index, seed) pairs.
    dataset = list(range(12))
    world(0, 1)
    alone = _pairs(ResumableDefaultSampler(dataset, seed=1))
    shared = []
    for rank in range(3):
        world(rank, 3)
        shared += _pairs(ResumableDefaultSampler(dataset, seed=1))
    assert sorted(shared) == sorted(alone)
    world(0, 1)
    alone = _pairs(itertools.islice(iter(ResumableInfiniteSampler(dataset, seed=1)), 30))
    shared = []
    for rank in range(3):
        world(rank, 3)
        shared += _pairs(itertools.islice(iter(ResumableInfiniteSampler(dataset, seed=1)), 10))
    assert sorted(shared) == sorted(alone)


@pytest.mark.parametrize('size', [1, 2])
def test_infinite_sampler_order_and_start(world, size):
    dataset = list(range(7))
    for rank in range(size):
        world(rank, size)
        reference = list(itertools.islice(iter(InfiniteSampler(dataset, seed=2)), 40))
        full = list(itertools.islice(iter(ResumableInfiniteSampler(dataset, seed=2)), 40))
        assert [int(i) for i in full] == reference
        assert [i.seed for i in full] == [sample_seed(2, 0, k * size + rank) for k in range(40)]
        for offset in (0, 1, 13, 39):
            sampler = ResumableInfiniteSampler(dataset, seed=2)
            sampler.start_at(offset)
            assert _pairs(itertools.islice(iter(sampler), 40 - offset)) == _pairs(full[offset:])


def test_default_sampler_start_holds_for_one_pass_whatever_set_epoch(world):
    world(1, 2)
    dataset = list(range(9))
    sampler = ResumableDefaultSampler(dataset, seed=0)
    sampler.set_epoch(3)
    epoch3 = _pairs(sampler)
    sampler.set_epoch(4)
    epoch4 = _pairs(sampler)
    sampler.start_at(2, epoch=3)
    sampler.set_epoch(0)  # MMEngine's DistSamplerSeedHook, after the loop started its pass
    assert _pairs(sampler) == epoch3[2:]
    sampler.set_epoch(4)  # the next pass, as the loop's cycler sets it
    assert _pairs(sampler) == epoch4
    with pytest.raises(ValueError, match='offset and epoch'):
        sampler.start_at(-1)


def test_sample_index_is_an_int_that_pickles_with_its_seed():
    index = SampleIndex(7, 12345)
    assert index == 7 and isinstance(index, int) and [10, 11, 12, 13, 14, 15, 16, 17][index] == 17
    copy = pickle.loads(pickle.dumps(index))
    assert type(copy) is SampleIndex and int(copy) == 7 and copy.seed == 12345


def test_seeded_random_seeds_and_restores_every_generator():
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    before = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    with seeded_random(99):
        drawn = random.random(), np.random.rand(), torch.rand(1).item()
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    assert drawn == (random.random(), np.random.rand(), torch.rand(1).item())
    random.setstate(before[0])
    after_restore = random.random()
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    with seeded_random(99):
        pass
    assert random.random() == after_restore
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])


class _Images(SeededSamplesMixin, BaseDataset):
    """The real ISIC JPEGs of the fixtures, as a dataset with seeded samples."""

    def load_data_list(self):
        folder = Path(self.data_root) / 'ISIC2018_Task1-2_Training_Input'
        return [dict(img_path=str(path), gt_label=0) for path in sorted(folder.glob('*.jpg'))]


def test_seeded_sample_is_augmented_under_its_seed_only(fixtures_dir):
    """A real dermoscopy image through random augmentations (crop, flip, colour): the same seed
    gives the same tensor whatever the generators held; the reference is the plain pipeline
    run after seeding the three generators by hand."""
    pipeline = [
        dict(type='LoadImageStrict'),
        dict(type='mmpretrain.RandomResizedCrop', scale=32),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='mmpretrain.ColorJitter', brightness=0.4, contrast=0.4, saturation=0.2),
        dict(type='mmpretrain.PackInputs'),
    ]
    dataset = _Images(data_root=str(fixtures_dir / 'isic2018_task1'), pipeline=pipeline)
    outputs = []
    for noise in (0, 1):
        torch.manual_seed(noise)
        np.random.seed(noise)
        random.seed(noise)
        outputs.append(dataset[SampleIndex(2, 4321)]['inputs'])
    assert torch.equal(*outputs)
    random.seed(4321)
    np.random.seed(4321)
    torch.manual_seed(4321)
    reference = dataset[2]['inputs']
    assert torch.equal(outputs[0], reference)
    assert not torch.equal(dataset[SampleIndex(2, 4322)]['inputs'], reference)
    assert dataset[SampleIndex(2, 4321)]['data_samples'].sample_idx == 2
