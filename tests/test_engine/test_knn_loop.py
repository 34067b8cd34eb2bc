"""The k-NN loops in a real Runner: the reported metrics are the dataset metric of the k-NN
scores computed outside the Runner, whichever way the weights arrive, during training too."""
import csv
import json

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.models.utils.data_preprocessor import SelfSupDataPreprocessor

from medtrans.apis import (
    build_runner,
    knn_evaluate,
    load_config,
    prepare_config,
    prepare_knn_config,
)
from medtrans.datasets.chexpert import CHEXPERT_OBSERVATIONS
from medtrans.engine import memory_dataloader_cfg
from medtrans.evaluation.functional import accuracy, cohen_kappa
from medtrans.fileio import safe_load
from medtrans.testing import chexpert_layout

from .knn_setup import (
    APTOS_CONFIG,
    BATCH,
    REPO,
    SIZE,
    TEMPERATURE,
    K,
    build_model,
    reference_kappa,
    reference_scores,
    run_knn,
    save_weights,
    tiny_options,
    write_aptos,
)

pytestmark = pytest.mark.slow

CHEXPERT_CONFIG = REPO / 'configs' / 'classification' / 'deit-s' / (
    'deit-s_random_1xb64_plateau_chexpert-224.py')


@pytest.fixture(scope='module')
def aptos(tmp_path_factory):
    return write_aptos(tmp_path_factory.mktemp('data') / 'APTOS2019')


@pytest.fixture(scope='module')
def weights(aptos, tmp_path_factory):
    """A random DeiT-tiny, its config (work dir: ``work``) and its weights in three files."""
    folder = tmp_path_factory.mktemp('weights')
    cfg = prepare_config(load_config(str(APTOS_CONFIG), tiny_options(aptos)), str(APTOS_CONFIG),
                         work_dir=str(folder / 'work'))
    model = build_model(cfg, seed=1)
    return model, save_weights(model, folder)


def test_backbone_files_give_the_reference_metrics(aptos, weights, tmp_path):
    # (A run checkpoint is what the other tests pass.)
    model, files = weights
    options = tiny_options(aptos)
    cfg, exported = run_knn(APTOS_CONFIG, options, tmp_path / 'export', files['backbone'])
    # No checkpoint: the config's own initialisation reads its `pretrained` file.
    options['model.backbone.pretrained'] = str(files['timm'])
    _, timm = run_knn(APTOS_CONFIG, options, tmp_path / 'timm')
    expected = reference_kappa(model, cfg)
    assert exported == expected and timm == expected
    record = json.loads((tmp_path / 'export' / 'metrics' / 'test_latest.json').read_text())
    assert record['metrics'] == expected


def test_knn_config_of_a_cnn(aptos, tmp_path):
    # A Table 3 config as shipped: ResNet-50's pooled embedding, k and T from the config.
    config = REPO / 'configs' / 'knn' / 'resnet50' / 'knn_resnet50_random_1xb64_aptos2019-224.py'
    options = {key: value for key, value in tiny_options(aptos).items()
               if not key.startswith('model.')}
    cfg = prepare_knn_config(load_config(str(config), options), str(config),
                             work_dir=str(tmp_path / 'work'))
    assert (cfg.test_cfg.k, cfg.test_cfg.temperature) == (200, 0.07)
    model = build_model(cfg)
    checkpoint = save_weights(model, tmp_path)['runner']
    metrics = knn_evaluate(cfg, str(checkpoint))
    scores, samples, _ = reference_scores(model, cfg, num_classes=5, k=200, temperature=0.07)
    labels = torch.cat([s.gt_label for s in samples])
    assert metrics == dict(kappa=cohen_kappa(scores, labels), accuracy=accuracy(scores, labels))


def test_val_loop_during_training_scores_the_current_weights(aptos, tmp_path):
    options = tiny_options(aptos)
    options.update({
        'train_dataloader.batch_size': 4,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.pipeline.1.scale': (SIZE, SIZE),
        'train_dataloader.dataset.pipeline.5.scale': SIZE,
        'val_dataloader.batch_size': BATCH,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'val_dataloader.dataset.pipeline.1.scale': (SIZE, SIZE),
        'val_dataloader.dataset.pipeline.2.crop_size': SIZE,
        'train_cfg.max_iters': 2,
        'train_cfg.val_interval': 2,
        'default_hooks.checkpoint.interval': 2,
        'val_cfg': dict(type='KNNValLoop', k=K, temperature=TEMPERATURE),
    })
    work_dir = tmp_path / 'work'
    cfg = prepare_config(load_config(str(APTOS_CONFIG), options), str(APTOS_CONFIG),
                         work_dir=str(work_dir))
    runner = build_runner(cfg)
    runner.train()

    record = json.loads((work_dir / 'metrics' / 'val_2.json').read_text())
    assert list(work_dir.glob('best_kappa_iter_2.pth'))
    trained = build_model(cfg)
    trained.load_state_dict(safe_load(str(work_dir / 'iter_2.pth'))['state_dict'])
    evaluated = Config(dict(train_dataloader=cfg.train_dataloader,
                            test_dataloader=cfg.val_dataloader))
    assert record['metrics'] == reference_kappa(trained, evaluated)


def test_multi_label_with_ignored_entries_and_one_evaluation_image(tmp_path):
    root = tmp_path / 'CheXpert-v1.0-small'
    chexpert_layout(str(root))
    options = tiny_options(root)
    options.update({
        'train_dataloader.dataset.split': 'all',
        'train_dataloader.dataset.uncertainty': 'ignore',
        'test_dataloader.dataset.split': 'official_val',
        'test_dataloader.dataset.uncertainty': 'ignore',
    })
    cfg = prepare_config(load_config(str(CHEXPERT_CONFIG), options), str(CHEXPERT_CONFIG),
                         work_dir=str(tmp_path / 'work'))
    model = build_model(cfg)
    checkpoint = save_weights(model, tmp_path)['runner']
    out = tmp_path / 'preds.csv'
    # multi_label is not given: the loop takes it from ROCAUCMetric(multi_label=True).
    _, metrics = run_knn(CHEXPERT_CONFIG, options, tmp_path / 'work', checkpoint, out=out)

    expected, samples, memory_targets = reference_scores(model, cfg)
    assert len(samples) == 1 and (memory_targets == -1).any()
    rows = list(csv.DictReader(out.open()))
    assert [row['sample_id'] for row in rows] == [s.sample_id for s in samples]
    probs = np.array([[float(row[f'prob_{c}']) for c in CHEXPERT_OBSERVATIONS] for row in rows])
    np.testing.assert_array_equal(probs, expected.double().numpy())
    # One image has no positive and negative of any class: every AUC is undefined.
    assert np.isnan(metrics['auc']) and metrics['auc_num_classes'] == 0


@pytest.fixture(scope='module')
def runner(aptos, tmp_path_factory):
    """A Runner of the APTOS k-NN test, for building loops with faulty settings."""
    options = tiny_options(aptos)
    cfg = prepare_knn_config(load_config(str(APTOS_CONFIG), options), str(APTOS_CONFIG),
                             work_dir=str(tmp_path_factory.mktemp('errors')))
    return build_runner(cfg)


@pytest.mark.parametrize('change, error, message', [
    (dict(embedding='head'), TypeError, 'has no forward_embedding'),
    (dict(embedding='neck'), ValueError, "embedding='neck' names no submodule"),
    (dict(memory_dataloader='drop_last'), ValueError, 'gave 24 distinct samples of the 28'),
    (dict(memory_dataloader='no_sample_idx'), ValueError, "keep 'sample_idx' in the meta_keys"),
    (dict(preprocessor='self_supervised'), TypeError, 'not one batch tensor'),
])
def test_clear_errors(runner, change, error, message, monkeypatch):
    if change.pop('preprocessor', None):
        # DINO's preprocessor keeps pseudo_collate's list of images as a list of views.
        monkeypatch.setattr(runner.model, 'data_preprocessor', SelfSupDataPreprocessor())
    if 'memory_dataloader' in change:
        memory = memory_dataloader_cfg(runner.cfg.train_dataloader, runner.cfg.test_dataloader)
        if change['memory_dataloader'] == 'drop_last':
            memory['drop_last'] = True
        else:
            memory['dataset']['pipeline'][-1]['meta_keys'] = ('img_path', )
        change = dict(memory_dataloader=memory)
    loop = runner.build_test_loop(dict(type='KNNTestLoop', **change))
    with pytest.raises(error, match=message):
        loop.run()
