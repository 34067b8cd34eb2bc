"""MetricsJsonHook: the JSON files it writes, alone and inside a real MMEngine Runner."""
import json
import math
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch import nn
from torch.utils.data import DataLoader, Dataset

from medtrans.engine.hooks import MetricsJsonHook
from medtrans.registry import HOOKS


def _runner_stub(work_dir: Path, **kwargs) -> SimpleNamespace:
    """The attributes of a Runner that the hook reads."""
    fields = dict(work_dir=str(work_dir), iter=120, epoch=3, timestamp='20250101_120000',
                  cfg=Config(dict(load_from=None)))
    fields.update(kwargs)
    return SimpleNamespace(**fields)


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_registered():
    assert HOOKS.get('MetricsJsonHook') is MetricsJsonHook


def test_val_writes_step_and_latest_files(tmp_path: Path):
    hook = MetricsJsonHook()
    runner = _runner_stub(tmp_path)
    metrics = {'IoU': np.float32(0.75), 'Dice': torch.tensor(0.5), 'count': 3,
               'per_class': np.array([0.25, 1.0]), 'undefined': float('nan')}
    hook.after_val_epoch(runner, metrics=metrics)

    out = tmp_path / 'metrics'
    assert sorted(p.name for p in out.iterdir()) == ['val_120.json', 'val_latest.json']
    record = _read(out / 'val_120.json')
    assert record == {
        'mode': 'val', 'iter': 120, 'epoch': 3, 'timestamp': '20250101_120000',
        'metrics': {'IoU': 0.75, 'Dice': 0.5, 'count': 3.0, 'per_class': [0.25, 1.0],
                    'undefined': None}}
    assert type(record['metrics']['count']) is float
    assert _read(out / 'val_latest.json') == record

    runner.iter, runner.epoch = 240, 6
    hook.after_val_epoch(runner, metrics={'IoU': 0.8})
    assert _read(out / 'val_120.json') == record
    assert _read(out / 'val_240.json') == _read(out / 'val_latest.json')
    assert _read(out / 'val_latest.json')['metrics'] == {'IoU': 0.8}
    assert _read(out / 'val_latest.json')['iter'] == 240


def test_test_names_file_by_timestamp_and_records_checkpoint(tmp_path: Path):
    hook = MetricsJsonHook()
    hook.after_test_epoch(_runner_stub(tmp_path, cfg=Config(dict(load_from='best.pth'))),
                          metrics={'IoU': 0.7})
    record = _read(tmp_path / 'metrics' / 'test_20250101_120000.json')
    assert record['mode'] == 'test' and record['checkpoint'] == 'best.pth'
    assert _read(tmp_path / 'metrics' / 'test_latest.json') == record

    # The path the Runner was given takes precedence over the config's.
    runner = _runner_stub(tmp_path, timestamp='later', _load_from='/ckpt/iter_10.pth',
                          cfg=Config(dict(load_from='best.pth')))
    hook.after_test_epoch(runner, metrics={'IoU': 0.7})
    assert _read(tmp_path / 'metrics' / 'test_latest.json')['checkpoint'] == '/ckpt/iter_10.pth'
    assert (tmp_path / 'metrics' / 'test_20250101_120000.json').is_file()

    hook.after_test_epoch(_runner_stub(tmp_path, timestamp='none'), metrics={'IoU': 0.7})
    assert _read(tmp_path / 'metrics' / 'test_none.json')['checkpoint'] is None


def test_no_metrics_writes_nothing_and_out_dir_is_configurable(tmp_path: Path):
    MetricsJsonHook().after_val_epoch(_runner_stub(tmp_path), metrics=None)
    assert not (tmp_path / 'metrics').exists()
    MetricsJsonHook(out_dir='scores').after_val_epoch(_runner_stub(tmp_path), metrics={'a': 1})
    assert (tmp_path / 'scores' / 'val_latest.json').is_file()


def test_unwritable_metric_fails_clearly_and_keeps_previous_file(tmp_path: Path):
    hook = MetricsJsonHook()
    runner = _runner_stub(tmp_path)
    hook.after_val_epoch(runner, metrics={'IoU': 0.5})
    before = (tmp_path / 'metrics' / 'val_latest.json').read_text()
    runner.iter = 130
    with pytest.raises(TypeError, match='Metric "table" is a str'):
        hook.after_val_epoch(runner, metrics={'IoU': 0.6, 'table': 'a b c'})
    assert (tmp_path / 'metrics' / 'val_latest.json').read_text() == before
    assert sorted(p.name for p in (tmp_path / 'metrics').iterdir()) == [
        'val_120.json', 'val_latest.json']


def _rank_worker(rank: int, world_size: int, init_file: str, work_dir: str) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world_size)
    try:
        MetricsJsonHook().after_val_epoch(
            _runner_stub(Path(work_dir)), metrics={'rank': float(rank)})
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_only_main_process_writes(tmp_path: Path):
    mp.spawn(_rank_worker, args=(2, str(tmp_path / 'init'), str(tmp_path / 'work')), nprocs=2)
    out = tmp_path / 'work' / 'metrics'
    assert sorted(p.name for p in out.iterdir()) == ['val_120.json', 'val_latest.json']
    assert _read(out / 'val_latest.json')['metrics'] == {'rank': 0.0}


class _ToyLesions(Dataset):
    """Ellipse-shaped lesion masks with SegDataSample ground truth."""

    def __init__(self, num: int = 6, size: int = 32) -> None:
        self.masks = []
        for i in range(num):
            mask = np.zeros((size, size), dtype=np.uint8)
            cv2.ellipse(mask, (size // 2, size // 2), (4 + i, 3 + i // 2), 15 * i, 0, 360, 1, -1)
            self.masks.append(mask)

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, index: int) -> dict:
        gt = torch.from_numpy(self.masks[index]).long()[None]
        sample = SegDataSample(metainfo=dict(img_path=f'toy_{index}.png'))
        sample.gt_sem_seg = PixelData(data=gt)
        return dict(inputs=gt.float(), data_samples=sample)


class _ShiftSegmentor(BaseModel):
    """Predicts the ground truth shifted by two pixels; one weight, so that training runs."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return dict(loss=sum((self.weight * x).mean() for x in inputs))
        for sample in data_samples:
            sample.pred_sem_seg = PixelData(data=torch.roll(sample.gt_sem_seg.data, 2, dims=-1))
        return data_samples


def test_real_runner_writes_val_and_test_metrics(tmp_path: Path):
    checkpoint = tmp_path / 'init.pth'
    torch.save(_ShiftSegmentor().state_dict(), checkpoint)

    def loader():
        return DataLoader(_ToyLesions(), batch_size=2, collate_fn=pseudo_collate)

    runner = Runner(
        model=_ShiftSegmentor(),
        work_dir=str(tmp_path / 'work'),
        train_dataloader=loader(),
        train_cfg=dict(by_epoch=False, max_iters=4, val_interval=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        val_dataloader=loader(),
        val_cfg=dict(),
        val_evaluator=dict(type='LesionSegMetric'),
        test_dataloader=loader(),
        test_cfg=dict(),
        test_evaluator=dict(type='LesionSegMetric'),
        custom_hooks=[dict(type='MetricsJsonHook')],
        default_hooks=dict(checkpoint=None),
        load_from=str(checkpoint),
        default_scope='medtrans')
    runner.train()
    test_metrics = runner.test()

    out = tmp_path / 'work' / 'metrics'
    assert {p.name for p in out.iterdir()} == {
        'val_2.json', 'val_4.json', 'val_latest.json', f'test_{runner.timestamp}.json',
        'test_latest.json'}
    val_record = _read(out / 'val_latest.json')
    assert val_record == _read(out / 'val_4.json')
    assert (val_record['mode'], val_record['iter'], _read(out / 'val_2.json')['iter']) == (
        'val', 4, 2)
    assert set(val_record['metrics']) == {'IoU', 'Jaccard', 'thresholded_Jaccard', 'Dice'}

    test_record = _read(out / 'test_latest.json')
    assert test_record['mode'] == 'test' and test_record['checkpoint'] == str(checkpoint)
    assert test_record['metrics'] == test_metrics
    assert all(0.0 < v < 1.0 and not math.isnan(v) for v in test_metrics.values())
    # The model does not depend on its weight, so validation saw the same scores.
    assert val_record['metrics'] == test_metrics
