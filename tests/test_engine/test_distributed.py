"""Multi-process runs without CUDA: MedtransRunner starts gloo for every MMEngine launcher."""
import os

import pytest

_DIST_SCRIPT = '''
import sys
import torch.distributed as dist
from mmengine.config import Config
from mmengine.model import BaseModel
from torch import nn

from medtrans.engine import MedtransRunner


class TwoHeads(BaseModel):
    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Linear(2, 1), nn.Linear(2, 1)
        self.norm = nn.SyncBatchNorm(1)  # GPUs only: becomes CPUSyncBatchNorm

    def forward(self, inputs, mode='tensor'):
        return self.used(inputs)


cfg = Config(dict(launcher=sys.argv[1],
                  env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=600)), **eval(sys.argv[2])))
runner = MedtransRunner(model=TwoHeads(), work_dir=sys.argv[3], launcher=cfg.launcher,
                        env_cfg=cfg.env_cfg, cfg=cfg)
ddp = runner.model
print(dist.get_backend(), dist.get_rank(), dist.get_world_size(),
      type(ddp.module.norm).__name__, ddp.find_unused_parameters, ddp.broadcast_buffers,
      ddp.device_ids)
dist.destroy_process_group()
'''


# The config's top-level find_unused_parameters reaches DDP, and so does its own
# model_wrapper_cfg, with only device_ids changed.
_TOP_LEVEL = ('dict(find_unused_parameters=True)', 'True False None')
_WRAPPER_CFG = ("dict(model_wrapper_cfg=dict(type='MMDistributedDataParallel', "
                "broadcast_buffers=True, find_unused_parameters=True, device_ids=[0]))",
                'True True None')


@pytest.mark.parametrize('launcher, launcher_env, wrapper_options, expected', [
    ('pytorch', dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1'), *_TOP_LEVEL),
    ('slurm', dict(SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_LOCALID='0',
                   SLURM_NODELIST='localhost'), *_WRAPPER_CFG),
    ('mpi', dict(OMPI_COMM_WORLD_RANK='0', OMPI_COMM_WORLD_SIZE='1',
                 OMPI_COMM_WORLD_LOCAL_RANK='0'), *_TOP_LEVEL),
])
def test_cpu_distributed_for_every_mmengine_launcher(launcher, launcher_env, wrapper_options,
                                                     expected, free_port, tmp_path):
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('SLURM_', 'OMPI_', 'MASTER_', 'RANK', 'LOCAL_RANK', 'WORLD_'))}
    env.update(launcher_env, MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port),
               CUDA_VISIBLE_DEVICES='')
    result = subprocess.run(
        [sys.executable, '-c', _DIST_SCRIPT, launcher, wrapper_options, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f'gloo 0 1 CPUSyncBatchNorm {expected}'


_CLOSE_SCRIPT = '''
import gc
import sys

import torch
from mmengine.model import BaseModel
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from medtrans.engine import MedtransRunner
from medtrans.engine.distributed import closing_process_group


class Linear(BaseModel):
    def __init__(self, fail_at):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.fail_at, self.steps = fail_at, 0

    def forward(self, inputs, mode='tensor'):
        self.steps += 1
        if self.steps == self.fail_at:
            raise RuntimeError('the run fails')
        return dict(loss=self.linear(torch.stack(inputs)).sum())


def train(work_dir, fail_at):  # as the tools run it: no variable of theirs holds the Runner
    runner = MedtransRunner(
        model=Linear(fail_at), work_dir=work_dir, launcher='pytorch',
        train_dataloader=dict(dataset=[dict(inputs=torch.ones(2))] * 4, batch_size=2,
                              sampler=dict(type='DefaultSampler')),
        train_cfg=dict(by_epoch=False, max_iters=2), optim_wrapper=dict(optimizer=dict(
            type='SGD', lr=0.1)))
    runner.train()  # its loop holds the runner: a reference cycle


try:
    with closing_process_group():
        train(sys.argv[1], fail_at=int(sys.argv[2]))
finally:
    print(sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects()))
'''


def test_closing_frees_the_wrapper_that_holds_the_group(free_port, tmp_path):
    """A finished or failed Runner's DDP wrapper, kept alive by reference cycles or by the
    exception's traceback, is freed by ``closing_process_group`` before the process group goes
    (else the group lives to interpreter exit, where gloo can abort: ``close_distributed``)."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if not k.startswith(('MASTER_', 'RANK', 'WORLD_'))}
    env.update(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(free_port), CUDA_VISIBLE_DEVICES='')
    # A run that ends, and one that fails at its second step: then the frames of the
    # propagating exception's traceback hold the Runner too.
    for fail_at, returncode in ((0, 0), (2, 1)):
        result = subprocess.run(
            [sys.executable, '-c', _CLOSE_SCRIPT, str(tmp_path / str(fail_at)), str(fail_at)],
            env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == returncode, result.stderr[-3000:]
        assert result.stdout.splitlines()[-1] == '0', (fail_at, result.stderr[-3000:])
        assert ('RuntimeError: the run fails' in result.stderr) == bool(fail_at)
