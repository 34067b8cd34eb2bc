"""A resumed run reads no sample for the iterations before it, then sees the uninterrupted run's
batches: the same samples, augmented the same (``ResumableIterBasedTrainLoop`` with the resumable
samplers; ``tests/test_datasets/test_samplers.py`` tests the samplers alone).

Whole Runners are built from shipped configs, shrunk for the CPU: a classification cell
(``ResumableInfiniteSampler``) resumed mid-run, and a DINO pretraining
(``ResumableDefaultSampler``, epochs) resumed one batch into its second epoch. A transform at the
head of the training pipeline records every sample the pipeline reads, in the data worker
(one, so that the order is the sampler's): augmentation runs there, under each sample's seed.
"""
import shutil
from pathlib import Path

import pytest
import torch
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import RUNNERS
from test_configs.test_all_configs import retarget_data, shrink_for_cpu, synthetic_data  # noqa

from medtrans.registry import TRANSFORMS
from medtrans.setup_env import register_all_modules

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'


@TRANSFORMS.register_module(name='_RecordSampleRead', force=True)
class _RecordSampleRead(BaseTransform):
    """Appends each sample index the pipeline reads to a file (from any process)."""

    def __init__(self, path):
        self.path = path

    def transform(self, results):
        with open(self.path, 'a') as f:
            f.write(f"{int(results['sample_idx'])}\n")
        return results


class _RecordBatches(Hook):
    """Every training batch: its sample indices and input tensors."""

    def __init__(self):
        self.batches = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        inputs = data_batch['inputs']
        tensors = [t.clone() for t in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
        samples = data_batch.get('data_samples')
        ids = [s.metainfo.get('sample_idx') for s in samples] if samples else None
        self.batches[runner.iter] = (ids, tensors)


def _cfg(name, work_dir, synthetic_data):  # noqa: F811
    cfg = Config.fromfile(str(CONFIGS / name))
    retarget_data(cfg, synthetic_data)
    shrink_for_cpu(cfg)
    cfg.train_dataloader.dataset.pipeline.insert(
        0, dict(type='_RecordSampleRead', path=str(work_dir.parent / 'read.txt')))
    cfg.train_dataloader.num_workers = 1
    cfg.work_dir = str(work_dir)
    cfg.default_hooks.checkpoint.max_keep_ckpts = -1
    cfg.randomness = dict(seed=3)
    return cfg


def _run(cfg, resume=False):
    read = Path(cfg.work_dir).parent / 'read.txt'
    read.unlink(missing_ok=True)
    runner = RUNNERS.build(cfg.copy() if not resume else Config(dict(cfg.to_dict(), resume=True)))
    recorder = _RecordBatches()
    runner.register_hook(recorder)
    runner.train()
    return recorder.batches, [int(line) for line in read.read_text().split()], runner


@pytest.mark.slow
@pytest.mark.parametrize('name', [
    'classification/deit-s/deit-s_random_1xb64_plateau_aptos2019-224.py',
    'dino/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96.py'])
def test_resumed_run_reads_only_its_own_batches(name, tmp_path, synthetic_data):  # noqa: F811
    register_all_modules(init_default_scope=False)
    cfg = _cfg(name, tmp_path / 'run', synthetic_data)
    if cfg.train_cfg.type == 'IterBasedEpochsTrainLoop':
        # Two epochs of two batches, resumed one batch into the second (a checkpoint every
        # L + 1 iterations).
        cfg.train_cfg.max_epochs = 2
        cfg.train_dataloader.batch_size = 1
        probe = Config(dict(cfg.to_dict(), work_dir=str(tmp_path / 'probe')))
        probe.train_dataloader.num_workers = 0  # reads nothing when its loop is built
        epoch_length = RUNNERS.build(probe).train_loop.epoch_length
        assert epoch_length > 1
        resume_at, total = epoch_length + 1, 2 * epoch_length
    else:
        cfg.train_cfg.update(max_iters=6, val_interval=3)
        resume_at, total = 4, 6
    cfg.default_hooks.checkpoint.interval = resume_at
    batches, read, _ = _run(cfg)
    assert sorted(batches) == list(range(total))
    per_batch = cfg.train_dataloader.batch_size
    assert len(read) >= per_batch * total  # and what the worker read ahead

    # Keep the checkpoint at `resume_at` only, as if the run had been killed after it.
    work_dir = Path(cfg.work_dir)
    for path in work_dir.glob('*.pth'):
        if path.name != f'iter_{resume_at}.pth':
            path.unlink()
    (work_dir / 'last_checkpoint').unlink()
    resumed, resumed_read, runner = _run(cfg, resume=True)
    assert runner.iter == total

    # Nothing read for the iterations before resume_at; then the same samples in the same order.
    # (What the worker reads ahead past the last iteration may still be on its way: not compared.)
    trained = (total - resume_at) * per_batch
    assert resumed_read[:trained] == read[resume_at * per_batch:total * per_batch]
    assert sorted(resumed) == list(range(resume_at, total))
    for iteration in range(resume_at, total):
        ids, tensors = resumed[iteration]
        expected_ids, expected = batches[iteration]
        assert ids == expected_ids, iteration
        assert len(tensors) == len(expected)
        for tensor, reference in zip(tensors, expected):
            assert torch.equal(tensor, reference), f'iteration {iteration}: other augmentation'
    shutil.rmtree(work_dir)
