"""NoPauseIterBasedTrainLoop draws MMEngine's batches without its pause at each epoch end."""
import mmengine.runner.loops
import pytest
from mmengine.dataset import DefaultSampler
from mmengine.runner.loops import IterBasedTrainLoop
from torch.utils.data import DataLoader

from medtrans.engine import IterBasedEpochsTrainLoop, NoPauseIterBasedTrainLoop


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


@pytest.mark.parametrize('loop_type,kwargs', [(NoPauseIterBasedTrainLoop, dict(max_iters=10)),
                                              (IterBasedEpochsTrainLoop, dict(max_epochs=4))])
def test_same_batches_as_mmengine_without_the_pause(loop_type, kwargs, monkeypatch):
    expected, mmengine_sleeps = _draw(IterBasedTrainLoop, monkeypatch, max_iters=10)
    assert mmengine_sleeps == [2, 2, 2]  # the pause this loop removes: 2 s per epoch end
    batches, sleeps = _draw(loop_type, monkeypatch, **kwargs)
    assert batches == expected
    assert sleeps == []
    # Each epoch is a new shuffle (set_epoch), as in MMEngine.
    assert batches[:3] != batches[3:6]
