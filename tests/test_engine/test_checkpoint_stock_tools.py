"""A medtrans run's checkpoints are read by stock OpenMMLab tools, with weights-only loading."""
import pickle
from pathlib import Path

import pytest
import torch
from mmseg.apis import init_model

from medtrans.apis import build_runner, load_config, prepare_config
from medtrans.datasets import ISIC2018Task1Dataset
from medtrans.fileio import UnsafeCheckpointError
from medtrans.testing import make_synthetic_isic2018

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / 'tests' / 'data' / 'configs' / 'tiny_deeplab3_deit_isic2018.py'

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two iterations of the tiny config through the real Runner: a resume and a best
    checkpoint. Stock tools get the config file itself, as it is shipped."""
    root = tmp_path_factory.mktemp('isic') / 'ISIC2018'
    make_synthetic_isic2018(root, num_train=6, num_val=0, size=(64, 64), seed=5)
    options = {f'{loader}.dataset.data_root': str(root)
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')}
    options.update({'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
                    'default_hooks.checkpoint.interval': 2})
    cfg = load_config(str(TINY), options)
    work_dir = tmp_path_factory.mktemp('work')
    prepare_config(cfg, str(TINY), work_dir=str(work_dir))
    runner = build_runner(cfg)
    runner.train()
    return work_dir, runner.train_dataloader.dataset.metainfo, TINY


@pytest.mark.parametrize('name', ['iter_2.pth', 'best_IoU_iter_2.pth'])
def test_mmseg_init_model_reads_dataset_meta_and_weights(trained, name):
    work_dir, dataset_meta, config = trained
    model = init_model(str(config), str(work_dir / name), device='cpu')

    # pickle.dumps tells a tuple from a list or a tagged dict, which a loose comparison might not.
    assert pickle.dumps(model.dataset_meta) == pickle.dumps(dataset_meta)
    assert model.dataset_meta['classes'] == ISIC2018Task1Dataset.METAINFO['classes']
    assert model.dataset_meta['palette'] == ISIC2018Task1Dataset.METAINFO['palette']
    checkpoint = torch.load(work_dir / name, weights_only=True)
    assert b'__medtrans_type__' not in pickle.dumps(checkpoint['meta'])
    weights = model.state_dict()
    assert weights.keys() == checkpoint['state_dict'].keys()
    for key, value in checkpoint['state_dict'].items():
        assert torch.equal(weights[key], value), key


class _Payload:
    """Unpickling this object creates a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_mmseg_init_model_loads_weights_only(trained, tmp_path):
    work_dir, _, config = trained
    checkpoint = torch.load(work_dir / 'iter_2.pth', weights_only=True)
    marker = tmp_path / 'pwned'
    checkpoint['meta']['note'] = _Payload(str(marker))
    torch.save(checkpoint, tmp_path / 'evil.pth')
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        init_model(str(config), str(tmp_path / 'evil.pth'), device='cpu')
    assert not marker.exists()
