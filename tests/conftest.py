"""Shared test setup: medtrans registered (its weights-only loader and the mmcv._ext stand-in
before anything imports mmseg); offline hub; one compute thread per pytest-xdist worker."""
import gc
import os
import socket
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
if os.environ.get('PYTEST_XDIST_WORKER'):
    # `make test` runs one pytest-xdist worker per core: each worker and the processes its tests
    # start compute on one thread, so that workers do not fight over the cores.
    os.environ['OMP_NUM_THREADS'] = '1'

import pytest  # noqa: E402
import torch  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

from medtrans.setup_env import register_all_modules  # noqa: E402

register_all_modules(init_default_scope=False)

if os.environ.get('PYTEST_XDIST_WORKER'):
    torch.set_num_threads(1)  # torch may have been imported before OMP_NUM_THREADS was set

# What the imports built lives to the end: kept out of the collector's scans. MMEngine's
# datasets call gc.collect() when they are built (0.3 s each over these imports' objects).
gc.collect()
gc.freeze()

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT.parent / 'shared' / 'fixtures'


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope='session')
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f'real-data fixtures not found at {FIXTURES}')
    return FIXTURES


@pytest.fixture
def free_port() -> int:
    """A TCP port free at the moment, for the rendezvous of a distributed run (a fixed port
    would collide with a concurrent run)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def medtrans_default_scope():
    """Every test starts in the ``medtrans`` scope, whatever scope an earlier test's Runner
    left current (registries build by bare name in the current scope)."""
    with DefaultScope.overwrite_default_scope('medtrans'):
        yield
