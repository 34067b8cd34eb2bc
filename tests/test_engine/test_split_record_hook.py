"""SplitRecordHook: the split record a real Runner writes in its work dir, and later runs."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import DataLoader

from medtrans.datasets import CustomClsDataset, ISIC2018Task1Dataset
from medtrans.datasets.splits import split_ids
from medtrans.engine import SplitRecordHook
from medtrans.registry import HOOKS
from medtrans.testing import make_synthetic_isic2018, write_images

RECORD = Path('splits') / 'custom_cls_seed0.json'


class _Still(BaseModel):
    """Takes any batch of data infos; its loss is 0."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, mode: str = 'tensor', **batch):
        if mode == 'loss':
            return dict(loss=self.weight ** 2)
        return [None] * len(batch['img_path'])


class _Count(BaseMetric):

    def process(self, data_batch, data_samples) -> None:
        self.results.extend(data_samples)

    def compute_metrics(self, results: list) -> dict:
        return dict(count=len(results))


def _loader(dataset: dict) -> dict:
    return dict(dataset=dataset, batch_size=4, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='pseudo_collate'))


def _runner(work_dir: Path, name: str, train=None, val=None, test=None) -> Runner:
    """A Runner of one training iteration (train, val) or a test run (test)."""
    loops = {}
    if train is not None:
        loops.update(train_dataloader=_loader(train), optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.0)),
            train_cfg=dict(type='IterBasedTrainLoop', max_iters=1, val_interval=1))
    if val is not None:
        loops.update(val_dataloader=_loader(val), val_cfg=dict(), val_evaluator=[_Count()])
    if test is not None:
        loops.update(test_dataloader=_loader(test), test_cfg=dict(), test_evaluator=[_Count()])
    return Runner(model=_Still(), work_dir=str(work_dir), experiment_name=name,
                  default_hooks=dict(checkpoint=None), custom_hooks=[dict(type='SplitRecordHook')],
                  default_scope='medtrans', **loops)


def _custom(root: Path, split: str) -> dict:
    return dict(type='CustomClsDataset', data_root=str(root), split=split)


def _ids(dataset) -> list:
    return [dataset.get_data_info(i)['sample_id'] for i in range(len(dataset))]


def _log(runner: Runner) -> str:
    return Path(runner.log_dir, f'{runner.timestamp}.log').read_text()


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    """20 images, 10 of each class, in a folder per class."""
    root = tmp_path / 'data'
    for cls in ('a', 'b'):
        write_images(str(root / cls), [f'{i:02d}.png' for i in range(10)], seed=0, size=8)
    return root


def test_registered_and_exported():
    assert HOOKS.get('SplitRecordHook') is SplitRecordHook


def test_the_first_run_records_the_splits_and_a_second_run_is_checked_against_them(
        folders, tmp_path):
    work = tmp_path / 'work'
    first = _runner(work, 'first', train=_custom(folders, 'train'), val=_custom(folders, 'val'))
    first.train()
    record = json.loads((work / RECORD).read_text())
    test_set = CustomClsDataset(str(folders), split='test')
    assert record == dict(
        meta=dict(dataset='CustomClsDataset', fractions=dict(train=0.8, val=0.1, test=0.1),
                  split_seed=0, grouped=False, stratified=True),
        splits=dict(train=_ids(first.train_dataloader.dataset),
                    val=_ids(first.val_dataloader.dataset), test=_ids(test_set)))
    assert [len(ids) for ids in record['splits'].values()] == [16, 2, 2]
    assert f'Wrote the split record {work / RECORD}' in _log(first)

    text = (work / RECORD).read_text()
    second = _runner(work, 'second', train=_custom(folders, 'train'), val=_custom(folders, 'val'))
    second.train()
    assert (work / RECORD).read_text() == text
    assert f'The splits match their record {work / RECORD}' in _log(second)


def test_a_tampered_record_or_changed_data_stops_the_run_naming_the_file(folders, tmp_path):
    work = tmp_path / 'work'
    _runner(work, 'first', train=_custom(folders, 'train'), val=_custom(folders, 'val')).train()
    original = json.loads((work / RECORD).read_text())

    tampered = json.loads(json.dumps(original))
    moved = tampered['splits']['train'].pop(0)
    tampered['splits']['val'].append(moved)
    (work / RECORD).write_text(json.dumps(tampered))
    again = _runner(work, 'tampered', train=_custom(folders, 'train'),
                    val=_custom(folders, 'val'))
    with pytest.raises(ValueError) as err:
        again.train()
    assert (f'split record "{work / RECORD}" assigns 1 ids to other splits than this run does '
            f'(e.g. "{moved}" is in "val" there but in "train" here)') in str(err.value)
    assert again.iter == 0  # stopped before the first iteration

    (work / RECORD).write_text(json.dumps(original))
    write_images(str(folders / 'b'), ['10.png'], seed=1, size=8)
    with pytest.raises(ValueError, match=r'custom_cls_seed0.json" does not cover 1 ids found in '
                                         r"the data \(e.g. \['b/10.png'\]\)"):
        _runner(work, 'more_data', train=_custom(folders, 'train'),
                val=_custom(folders, 'val')).train()
    assert json.loads((work / RECORD).read_text()) == original


def test_a_test_run_records_its_split_without_building_the_training_set(folders, tmp_path):
    work = tmp_path / 'work'
    # Building this training set would fail: its data folder does not exist.
    runner = _runner(work, 'test', train=_custom(tmp_path / 'nowhere', 'train'),
                     test=_custom(folders, 'test'))
    assert runner.test() == dict(count=2)
    assert isinstance(runner._train_loop, dict)  # still the config: never built
    record = json.loads((work / RECORD).read_text())
    assert record['splits']['test'] == _ids(runner.test_dataloader.dataset)
    assert sum(len(ids) for ids in record['splits'].values()) == 20


def test_wrapped_datasets_are_unwrapped_and_published_splits_skipped(tmp_path):
    data = tmp_path / 'ISIC2018'
    make_synthetic_isic2018(str(data), num_train=10, num_val=2, size=(32, 32), seed=1)
    isic = dict(type='ISIC2018Task1Dataset', data_root=str(data))
    work = tmp_path / 'work'
    runner = _runner(
        work, 'wrapped', train=dict(type='RepeatDataset', times=2, dataset=dict(isic)),
        val=dict(type='ConcatDataset', datasets=[dict(isic, split='val'),
                                                 dict(isic, split='official_val')]))
    runner.train()
    assert [p.name for p in (work / 'splits').iterdir()] == ['isic2018_task1_seed0.json']
    ids = [f'ISIC_{i:07d}' for i in range(10)]
    assert json.loads((work / 'splits' / 'isic2018_task1_seed0.json').read_text()) == dict(
        meta=dict(dataset='ISIC2018Task1Dataset', val_fraction=0.1, split_seed=0),
        splits=split_ids(ids, {'train': 0.9, 'val': 0.1}, seed=0))
    assert ISIC2018Task1Dataset(str(data), split='official_val').divided_split() is None


def _rank_worker(rank: int, world_size: int, init_file: str, root: str, work_dir: str,
                 calls: str) -> None:
    import medtrans.engine.hooks.split_record_hook as hook_module

    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world_size)
    try:
        record = hook_module.record_splits

        def counted(dataset, work_dir):
            Path(calls, f'rank{rank}').touch()
            return record(dataset, work_dir)

        hook_module.record_splits = counted
        dataset = CustomClsDataset(root, split='train')
        runner = SimpleNamespace(
            work_dir=work_dir, logger=MMLogger.get_current_instance(), val_loop=None,
            train_loop=SimpleNamespace(dataloader=DataLoader(dataset)))
        SplitRecordHook().before_train(runner)
        # After the hook's barrier, every rank finds the record the main process wrote.
        assert Path(work_dir, RECORD).is_file()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_only_the_main_process_records_and_the_others_wait(folders, tmp_path):
    calls = tmp_path / 'calls'
    calls.mkdir()
    mp.spawn(_rank_worker, args=(2, str(tmp_path / 'init'), str(folders), str(tmp_path / 'work'),
                                 str(calls)), nprocs=2)
    assert [p.name for p in calls.iterdir()] == ['rank0']
    assert (tmp_path / 'work' / RECORD).is_file()


def _mismatch_worker(rank: int, world_size: int, init_file: str, root: str, work_dir: str,
                     errors: str) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world_size)
    try:
        runner = SimpleNamespace(
            work_dir=work_dir, logger=MMLogger.get_current_instance(), val_loop=None,
            train_loop=SimpleNamespace(dataloader=DataLoader(CustomClsDataset(root))))
        try:
            SplitRecordHook().before_train(runner)
        except ValueError as err:
            Path(errors, f'rank{rank}').write_text(str(err))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_a_record_that_does_not_fit_stops_every_process(folders, tmp_path):
    """Only the main process checks, but every process raises its error: none is left waiting
    for the others (launchers other than torchrun and Slurm's do not kill them)."""
    record = tmp_path / 'work' / RECORD
    record.parent.mkdir(parents=True)
    splits = CustomClsDataset(str(folders)).divided_split()
    meta, moved = splits[0], {name: list(ids) for name, ids in splits[1].items()}
    moved['val'].append(moved['train'].pop(0))
    record.write_text(json.dumps(dict(meta=meta, splits=moved)))
    errors = tmp_path / 'errors'
    errors.mkdir()
    mp.spawn(_mismatch_worker, args=(2, str(tmp_path / 'init'), str(folders),
                                     str(tmp_path / 'work'), str(errors)), nprocs=2)
    messages = {p.name: p.read_text() for p in errors.iterdir()}
    assert sorted(messages) == ['rank0', 'rank1']
    assert messages['rank0'] == messages['rank1'] and str(record) in messages['rank0']
