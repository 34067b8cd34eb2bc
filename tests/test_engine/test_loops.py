"""ResumableIterBasedTrainLoop draws MMEngine's batches without its pause at each epoch end."""
import mmengine.runner.loops
import pytest
import torch
from mmengine.dataset import DefaultSampler
from mmengine.runner.loops import IterBasedTrainLoop
from torch.utils.data import DataLoader

from medtrans.engine import IterBasedEpochsTrainLoop, ResumableIterBasedTrainLoop


def _dataloader():
    # 10 samples in batches of 3 (last partial batch dropped): an epoch ends every 3 batches.
    return DataLoader(list(range(10)), batch_size=3, drop_last=True,
                      sampler=DefaultSampler(list(range(10)), shuffle=True, seed=7))


def _draw(loop_type, monkeypatch, **kwargs):
    sleeps = []
    monkeypatch.setattr(mmengine.runner.loops.time, 'sleep', sleeps.append)
    loop = loop_type(runner=None, dataloader=_dataloader(), **kwargs)
    batches = [next(loop.dataloader_iterator).tolist() for _ in range(10)]
    return batches, sleeps


@pytest.mark.parametrize('loop_type,kwargs', [(ResumableIterBasedTrainLoop, dict(max_iters=10)),
                                              (IterBasedEpochsTrainLoop, dict(max_epochs=4))])
def test_same_batches_as_mmengine_without_the_pause(loop_type, kwargs, monkeypatch):
    expected, mmengine_sleeps = _draw(IterBasedTrainLoop, monkeypatch, max_iters=10)
    assert mmengine_sleeps == [2, 2, 2]  # the pause this loop removes: 2 s per epoch end
    batches, sleeps = _draw(loop_type, monkeypatch, **kwargs)
    assert batches == expected
    assert sleeps == []
    # Each epoch is a new shuffle (set_epoch), as in MMEngine.
    assert batches[:3] != batches[3:6]


class _CountedLoader(DataLoader):
    """A DataLoader that counts its passes (``iter`` calls)."""

    passes = 0

    def __iter__(self):
        self.passes += 1
        return super().__iter__()


@pytest.mark.parametrize('loop_type,kwargs', [(ResumableIterBasedTrainLoop, dict(max_iters=10)),
                                              (IterBasedEpochsTrainLoop, dict(max_epochs=4))])
def test_one_first_pass_and_the_same_random_state_as_mmengine(loop_type, kwargs):
    # Each pass draws its base seed from the global generator: a second first pass would shift
    # every random stream after it.
    states = []
    for build, arguments in ((IterBasedTrainLoop, dict(max_iters=10)), (loop_type, kwargs)):
        torch.manual_seed(0)
        loader = _CountedLoader(list(range(10)), batch_size=3, drop_last=True,
                                sampler=DefaultSampler(list(range(10)), shuffle=True, seed=7))
        loop = build(runner=None, dataloader=loader, **arguments)
        assert loader.passes == 1
        states.append(torch.get_rng_state())
        [next(loop.dataloader_iterator) for _ in range(3)]
        assert loader.passes == 1  # the first pass was the one started at construction
    assert torch.equal(*states)


def test_epochs_loop_counts_in_epochs():
    loop = IterBasedEpochsTrainLoop(runner=None, dataloader=_dataloader(), max_epochs=4,
                                    val_begin=2, val_interval=2)
    assert (loop.epoch_length, loop.max_epochs, loop.max_iters) == (3, 4, 12)
    assert (loop.val_begin, loop.val_interval) == (6, 6)
    assert loop.dynamic_milestones == [0] and loop.dynamic_intervals == [6]


@pytest.mark.parametrize('val_begin, dynamic_intervals', [(1, None), (5, None),
                                                          (1, [(6, 2), (11, 5)])])
def test_validates_after_is_mmengines_rule(val_begin, dynamic_intervals):
    from types import SimpleNamespace

    loop = ResumableIterBasedTrainLoop(runner=SimpleNamespace(val_loop=object()),
                                       dataloader=_dataloader(), max_iters=23,
                                       val_begin=val_begin, val_interval=3,
                                       dynamic_intervals=dynamic_intervals)
    # MMEngine's own decision, as its run() takes it after each iteration.
    mmengine_loop = IterBasedTrainLoop(runner=None, dataloader=_dataloader(), max_iters=23,
                                       val_begin=val_begin, val_interval=3,
                                       dynamic_intervals=dynamic_intervals)
    expected = []
    for iteration in range(1, 24):
        mmengine_loop._iter = iteration
        mmengine_loop._decide_current_val_interval()
        expected.append(iteration >= mmengine_loop.val_begin and (
            iteration % mmengine_loop.val_interval == 0 or iteration == 23))
    assert [loop.validates_after(i) for i in range(1, 24)] == expected
    assert any(expected) and not all(expected)
