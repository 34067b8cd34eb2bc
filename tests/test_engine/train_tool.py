"""``tools/train.py`` in one process, or in N processes under torchrun (gloo on CPUs; the DDP
tests)."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[2]


def run_train_tool(config: Path, work_dir: Path, options: Sequence[str], processes: int = 1,
                   port: Optional[int] = None) -> None:
    """Train ``config`` into ``work_dir`` with the tool's command-line ``options``; with
    ``tests/`` on the path, so that configs can import test modules (``custom_imports``)."""
    command = [str(REPO / 'tools' / 'train.py'), str(config), '--work-dir', str(work_dir)]
    if processes > 1:
        command = ['-m', 'torch.distributed.run', f'--nproc_per_node={processes}',
                   f'--master_port={port}', *command, '--launcher', 'pytorch']
    env = dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / 'tests')]))
    result = subprocess.run([sys.executable, *command, *options], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
