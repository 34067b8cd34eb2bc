"""The k-NN configs (configs/knn): one per row and dataset of Table 3, each its classification
cell with the test loop replaced by k-NN (k = 200, T = 0.07)."""
from pathlib import Path

import pytest

from medtrans.apis import load_config

REPO = Path(__file__).resolve().parents[2]
KNN_CONFIGS = sorted((REPO / 'configs' / 'knn').glob('*/knn_*.py'))
DATASETS_ = ('aptos2019', 'cbis-ddsm', 'isic2019', 'chexpert', 'pcam')


def test_every_row_of_table_3_has_a_config_per_dataset():
    assert set(KNN_CONFIGS) == {
        REPO / 'configs' / 'knn' / model / f'knn_{model}_{init}_1xb64_{dataset}-224.py'
        for model in ('deit-s', 'resnet50') for init in ('random', 'in1k', 'in1k-dino')
        for dataset in DATASETS_}


@pytest.mark.parametrize('path', KNN_CONFIGS, ids=[p.stem for p in KNN_CONFIGS])
def test_knn_config_is_its_classification_cell_with_the_knn_test_loop(path):
    model, init, _, dataset = path.stem.split('_')[1:]
    cell = REPO / 'configs' / 'classification' / model / (
        f'{model}_{init}_1xb64_plateau_{dataset}.py')
    cfg, cell_cfg = load_config(str(path)).to_dict(), load_config(str(cell)).to_dict()
    assert cfg.pop('test_cfg') == dict(type='KNNTestLoop', k=200, temperature=0.07)
    assert cfg.pop('knn_test_cfg') == dict(type='KNNTestLoop', k=200, temperature=0.07)
    cell_cfg.pop('test_cfg')
    assert cfg == cell_cfg
