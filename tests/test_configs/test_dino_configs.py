"""The DINO configs (configs/dino) and the ImageNet + DINO cells of Table 1
(configs/classification/*/*_in1k-dino_*): the study's settings, the classification runs'
training split, models that build for every backbone, and a shrunk Runner run per dataset."""
import json
from pathlib import Path

import pytest
import torch
from mmengine.registry import DefaultScope

from medtrans.apis import build_runner, load_config, prepare_config
from medtrans.registry import DATASETS, MODELS, TRANSFORMS
from medtrans.testing import write_synthetic_layout

REPO = Path(__file__).resolve().parents[2]
DINO_CONFIGS = sorted((REPO / 'configs' / 'dino').glob('dino_*.py'))
DINO_CELLS = sorted((REPO / 'configs' / 'classification').glob('*/*_in1k-dino_*.py'))
MODELS_ = ('deit-s', 'resnet50', 'inception-v3', 'swin-t')
DATASETS_ = ('aptos2019', 'cbis-ddsm', 'isic2019', 'chexpert', 'pcam')
IDS = [p.stem for p in DINO_CONFIGS]


def dino_config(model: str, dataset: str) -> Path:
    return REPO / 'configs' / 'dino' / f'dino_{model}_in1k_4xb64_300e_{dataset}-224-96.py'


def test_every_model_and_dataset_has_a_dino_config_and_a_dino_cell():
    expected = {dino_config(m, d) for m in MODELS_ for d in DATASETS_}
    assert set(DINO_CONFIGS) == expected
    assert {p.name for p in DINO_CELLS} == {
        f'{m}_in1k-dino_1xb64_plateau_{d}-224.py' for m in MODELS_ for d in DATASETS_}


@pytest.mark.parametrize('path', DINO_CONFIGS, ids=IDS)
def test_dino_config_has_the_studys_settings(path):
    cfg = load_config(str(path))
    model_name, dataset = path.stem.split('_')[1], path.stem.split('_')[-1][:-len('-224-96')]
    cls_cfg = load_config(str(REPO / 'configs' / 'classification' / model_name /
                              f'{model_name}_in1k_1xb64_plateau_{dataset}-224.py'))
    # Starts from the ImageNet file of the classification cell, trains on its training split.
    assert cfg.model.backbone.pretrained == cls_cfg.model.backbone.pretrained
    dataset_cfg = dict(cfg.train_dataloader.dataset)
    cls_dataset = dict(cls_cfg.train_dataloader.dataset)
    dataset_cfg.pop('pipeline'), cls_dataset.pop('pipeline')
    assert dataset_cfg == cls_dataset and dataset_cfg['split'] == 'train'
    # Validated every 10 epochs by k-NN of the teacher, on the classification runs' validation
    # split and metric; no test.
    assert cfg.val_cfg == dict(type='KNNValLoop', k=200, temperature=0.07,
                               embedding='teacher.backbone')
    assert (cfg.train_cfg.val_begin, cfg.train_cfg.val_interval) == (10, 10)
    assert cfg.val_dataloader.pop('collate_fn') == dict(type='default_collate')
    assert cfg.val_dataloader == cls_cfg.val_dataloader
    assert cfg.val_evaluator == cls_cfg.val_evaluator
    assert cfg.test_dataloader is None and cfg.test_cfg is None
    # DINO's head and loss; 2 global views of 224 and 8 local views of 96.
    assert cfg.model.type == 'DINO'
    # Batch norms synchronised under DDP, student and teacher, as DINO (docs/dino.md).
    assert cfg.sync_bn == 'torch'
    assert (cfg.model.head.out_channels, cfg.model.head.hidden_channels,
            cfg.model.head.bottleneck_channels) == (65536, 2048, 256)
    assert (cfg.model.loss.student_temp, cfg.model.loss.center_momentum) == (0.1, 0.9)
    views = cfg.train_dataloader.dataset.pipeline[1]
    assert views.num_views == [1, 1, 8]
    crops = [v[0] for v in views.transforms]
    assert [(c.scale, c.crop_ratio_range) for c in crops] == [
        (224, (0.4, 1.0)), (224, (0.4, 1.0)), (96, (0.05, 0.4))]
    # Batch 256 (4 x 64), LR 1e-4 at 256, weight decay 1e-5 -> 1e-4, 300 epochs.
    assert cfg.train_dataloader.batch_size * 4 == cfg.auto_scale_lr.base_batch_size == 256
    assert cfg.auto_scale_lr.enable
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 1e-4, 1e-5)
    decay = cfg.param_scheduler[-1]
    assert decay.param_name == 'weight_decay'
    assert optimizer.weight_decay * decay.eta_min_ratio == pytest.approx(1e-4, rel=1e-12)
    assert decay.end == cfg.train_cfg.max_epochs == 300
    hook = next(h for h in cfg.custom_hooks if h.type == 'DINOHook')
    assert (hook.warmup_teacher_temp, hook.teacher_temp, hook.warmup_teacher_temp_epochs,
            hook.momentum, hook.freeze_last_layer_epochs, hook.clip_grad) == (
                0.04, 0.07, 30, 0.99, 1, 3.0)


@pytest.mark.parametrize('path', DINO_CELLS, ids=[p.stem for p in DINO_CELLS])
def test_dino_cell_is_its_imagenet_cell_with_the_exported_backbone(path):
    cfg = load_config(str(path))
    imagenet = load_config(str(path.with_name(path.name.replace('_in1k-dino_', '_in1k_'))))
    model_name, dataset = path.parent.name, path.stem.split('_')[-1][:-len('-224')]
    assert cfg.pretrained == cfg.model.backbone.pretrained == \
        f'checkpoints/dino/{dino_config(model_name, dataset).stem}.safetensors'
    assert dino_config(model_name, dataset).is_file()
    cfg.model.backbone.pretrained = imagenet.model.backbone.pretrained
    cfg.pretrained = imagenet.pretrained
    assert cfg.to_dict() == imagenet.to_dict()


@pytest.mark.parametrize('model_name', MODELS_)
def test_dino_model_builds_and_computes_a_loss(model_name):
    cfg = load_config(str(dino_config(model_name, 'aptos2019')))
    cfg.model.backbone.pretrained = None
    with DefaultScope.overwrite_default_scope('medtrans'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    assert model.head.in_channels == model.backbone.num_features
    assert model.head.out_channels == model.loss_module.out_channels == 65536
    views = [torch.rand(1, 3, 96, 96) for _ in range(2)] + [torch.rand(1, 3, 80, 80)] * 2
    model.train()
    loss = model.loss(views)['loss']
    assert torch.isfinite(loss)


def test_multi_crop_pipeline_makes_dinos_views():
    cfg = load_config(str(dino_config('deit-s', 'aptos2019')))
    with DefaultScope.overwrite_default_scope('medtrans'):
        views = TRANSFORMS.build(cfg.train_dataloader.dataset.pipeline[1])
        pack = TRANSFORMS.build(cfg.train_dataloader.dataset.pipeline[2])
    image = (torch.rand(300, 260, 3) * 255).to(torch.uint8).numpy()
    packed = pack(views(dict(img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2])))
    assert [tuple(v.shape) for v in packed['inputs']] == [(3, 224, 224)] * 2 + [(3, 96, 96)] * 8
    assert all(v.dtype == torch.uint8 for v in packed['inputs'])


@pytest.mark.slow
@pytest.mark.parametrize('dataset', DATASETS_)
def test_dino_config_trains_an_epoch_on_its_datasets_layout(dataset, tmp_path):
    """The real config, its loading transform included, on the dataset's synthetic layout:
    sizes shrunk (global crops 64, two local crops of 32, batch 2; validation images 64), one
    epoch then its k-NN validation, no ImageNet file, no checkpoint."""
    path = dino_config('deit-s', dataset)
    cfg = prepare_config(load_config(str(path)), str(path), work_dir=str(tmp_path / 'work'))
    layout = write_synthetic_layout(DATASETS.get(cfg.train_dataloader.dataset.type),
                                    str(tmp_path / 'data'))
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.update(layout.dataset_cfg)
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    val_pipeline = cfg.val_dataloader.dataset.pipeline
    val_pipeline[1].scale, val_pipeline[2].crop_size = (64, 64), 64
    views = cfg.train_dataloader.dataset.pipeline[1]
    for transforms, size in zip(views.transforms, (64, 64, 32)):
        transforms[0].scale = size
    views.num_views = [1, 1, 2]
    cfg.model.backbone.pretrained = None
    cfg.train_cfg.update(max_epochs=1, val_begin=1, val_interval=1)
    cfg.default_hooks.checkpoint.update(save_last=False)  # ~0.5 GB with the optimizer state
    runner = build_runner(cfg)
    runner.train()
    assert runner.iter == runner.max_iters == len(runner.train_dataloader) > 0
    record = json.loads((tmp_path / 'work' / 'metrics' / 'val_latest.json').read_text())
    assert record['iter'] == runner.iter and cfg.monitor in record['metrics']
