"""The compatibility layer: mmcv ops stand-in and safe checkpoint loading."""
import os

import pytest
import torch
from mmengine.runner import CheckpointLoader
from safetensors.torch import save_file

from medtrans.utils import UnsafeCheckpointError, safe_load


def test_mmseg_models_import_and_ops_refuse_to_run():
    import mmcv._ext as ext
    import mmseg.models  # noqa: F401  needs the stand-in for mmcv._ext
    from mmcv.ops import point_sample  # noqa: F401
    with pytest.raises(NotImplementedError, match='nms'):
        ext.nms()


def test_safe_load_reads_pth_and_safetensors(tmp_path):
    state = {'w': torch.arange(6.).reshape(2, 3)}
    torch.save(state, tmp_path / 'a.pth')
    save_file(state, str(tmp_path / 'a.safetensors'))
    for name in ('a.pth', 'a.safetensors'):
        assert torch.equal(safe_load(tmp_path / name)['w'], state['w'])


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        safe_load(tmp_path / 'nope.pth')


class _Payload:
    """Unpickling this object creates a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_pickled_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        torch.save({'state_dict': {'w': torch.zeros(1)}, 'x': _Payload(str(marker))}, f)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        safe_load(path)
    # MMEngine's own loader (used by load_from and --resume) goes through the same policy.
    with pytest.raises(UnsafeCheckpointError):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()
    assert not os.path.exists('pwned')


_DIST_SCRIPT = '''
import sys
import torch.distributed as dist
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import medtrans  # noqa: F401
from medtrans.utils import export_local_rank, init_cpu_distributed


class TwoHeads(BaseModel):
    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Linear(2, 1), nn.Linear(2, 1)

    def forward(self, inputs, mode='tensor'):
        return self.used(inputs)


cfg = Config(dict(launcher=sys.argv[1], model=dict(norm=dict(type='SyncBN')),
                  env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=600)), **eval(sys.argv[2])))
export_local_rank(cfg.launcher)
init_cpu_distributed(cfg)
runner = Runner(model=TwoHeads(), work_dir=sys.argv[3], launcher=cfg.launcher,
                env_cfg=cfg.env_cfg, cfg=cfg)
ddp = runner.model
print(dist.get_backend(), dist.get_rank(), dist.get_world_size(), cfg.model.norm.type,
      ddp.find_unused_parameters, ddp.broadcast_buffers, ddp.device_ids)
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
    assert result.stdout.strip().splitlines()[-1] == f'gloo 0 1 BN {expected}'
