"""Retargeting a config from the command line (--data-root, --pretrained, --img-size) and the
refusal of ``--cfg-options`` that would change nothing the run reads."""
import copy
import importlib
from pathlib import Path

import pytest
from mmengine.config import Config

from medtrans.apis import load_config, retarget
from medtrans.apis.retarget import img_size_fits

REPO = Path(__file__).resolve().parents[2]
HEADLINE = REPO / 'configs' / 'deeplab3_deit_s_isic2018.py'
DEMO = REPO / 'configs' / 'demo' / 'deeplab3_deit_s_demo_isic2018.py'
CLS = REPO / 'configs' / 'classification' / 'deit-s' / 'deit-s_in1k_1xb64_plateau_aptos2019-224.py'
DINO = REPO / 'configs' / 'dino' / 'dino_deit-s_in1k_4xb64_300e_isic2019-224-96.py'
# The module: medtrans.apis exports its function of the same name.
retarget_module = importlib.import_module('medtrans.apis.retarget')


@pytest.fixture(scope='module')
def headline():
    return load_config(str(HEADLINE))


def _loaders(cfg):
    return [cfg[name] for name in ('train_dataloader', 'val_dataloader', 'test_dataloader')
            if cfg.get(name) is not None]


def test_img_size_of_the_segmentation_config(headline):
    cfg = copy.deepcopy(headline)
    retarget(cfg, img_size=128)
    expected = copy.deepcopy(headline)
    train, test = expected.train_dataloader.dataset.pipeline, _loaders(expected)[1:]
    train[2].scale = train[3].scale = train[4].crop_size = (128, 128)  # Resize, crops
    for loader in test:
        loader.dataset.pipeline[1].scale = (128, 128)
    expected.model.data_preprocessor.size = (128, 128)
    expected.model.backbone.img_size = 128
    for key in ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key] == expected[key], key
    assert cfg.crop_size == (128, 128)


def test_img_size_of_classification_scales_the_resize():
    cfg = load_config(str(CLS), img_size=112)
    train, test = cfg.train_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline
    # The recipe: resize 256, crop 224; at 112: resize 128, crop 112, and JPEGs decoded at no
    # less than the resize.
    assert (train[1].scale, train[5].scale) == ((128, 128), 112)
    assert (test[1].scale, test[2].crop_size) == ((128, 128), 112)
    assert train[0].reduce_jpeg_to == test[0].reduce_jpeg_to == 128
    assert (cfg.img_size, cfg.resize) == (112, (128, 128))


def test_img_size_of_dino_scales_global_and_local_crops():
    cfg = load_config(str(DINO), img_size=112)
    crops = [views[0].scale for views in cfg.train_dataloader.dataset.pipeline[1].transforms]
    assert crops == [112, 112, 48]  # 224 and 96, halved
    assert cfg.val_dataloader.dataset.pipeline[2].crop_size == 112


def test_img_size_rounds_derived_crops_to_what_the_backbone_takes(monkeypatch):
    # 96 at 224 is 27.4 at 64: DeiT's patch 16 makes the local crops 32 (the nearest multiple),
    # Swin's patch 4 makes them 28; the choice is logged.
    logged = []
    monkeypatch.setattr(retarget_module, 'print_log', lambda message, **_: logged.append(message))
    cfg = load_config(str(DINO), img_size=64)
    crops = [views[0].scale for views in cfg.train_dataloader.dataset.pipeline[1].transforms]
    assert crops == [64, 64, 32] and cfg.local_crop_size == 32
    assert logged == ['--img-size 64: DeiT takes input sides that are multiples of 16: rounded '
                      'train_dataloader.dataset.pipeline.1.transforms.2.0.scale 27 -> 32']
    swin = load_config(str(DINO).replace('deit-s', 'swin-t'), img_size=64)
    assert [views[0].scale for views in swin.train_dataloader.dataset.pipeline[1].transforms
            ] == [64, 64, 28]


@pytest.mark.parametrize('config, size, message', [
    (DINO, 100, '--img-size 100: DeiT takes input sides that are multiples of 16, which '
     'img_size=100 is not. --img-size 96 or 112 would fit'),
    (str(DINO).replace('deit-s', 'inception-v3'), 112,
     '--img-size 112: train_dataloader.dataset.pipeline.1.transforms.2.0.scale would be 48, and '
     'TimmInceptionV3 takes input sides that are at least 75 pixels. --img-size 174 would fit'),
])
def test_an_img_size_the_backbone_cannot_take_is_refused_with_sizes_that_fit(
        config, size, message):
    with pytest.raises(ValueError) as error:
        load_config(str(config), img_size=size)
    assert str(error.value) == message


@pytest.mark.parametrize('sizes, message', [
    (dict(), '--img-size: the config has none of the top-level input sizes '),
    (dict(crop_size=(512, 256)), '--img-size: crop_size=(512, 256) is not square; set the '
     'sizes with --cfg-options.'),
])
def test_an_img_size_without_one_square_input_size_is_refused(sizes, message):
    cfg = Config(dict(model=dict(type='ImageClassifier'), **sizes))
    with pytest.raises(ValueError) as error:
        retarget(cfg, img_size=64)
    assert str(error.value).startswith(message)
    assert not img_size_fits(cfg, 64)


def test_pretrained_of_an_mmseg_resnet_sets_its_init_cfg():
    path = REPO / 'configs' / 'deeplabv3' / (
        'deeplabv3_r50-d8_random_1xb8_plateau_isic2018-512x512.py')
    cfg = load_config(str(path), pretrained='r50.pth')
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint='r50.pth')
    assert load_config(str(path), pretrained=None).model.backbone.init_cfg is None


@pytest.mark.parametrize('option, fields, use', [
    ('data_root', 'train_dataloader.dataset.data_root, val_dataloader.dataset.data_root, '
     'test_dataloader.dataset.data_root', 'Use --data-root'),
    ('pretrained', 'model.backbone.pretrained', 'Use --pretrained'),
    ('crop_size', 'model.data_preprocessor.size', 'Use --img-size'),
    ('val_interval', 'train_cfg.val_interval=100', 'Set those fields instead'),
    ('train_pipeline', 'dotted keys', 'Set those fields instead'),
])
def test_an_override_that_reaches_nothing_is_refused(option, fields, use):
    with pytest.raises(ValueError, match=f'`{option}` is a variable') as error:
        load_config(str(HEADLINE), {option: 'x'})
    assert fields in str(error.value) and use in str(error.value)


def test_overrides_that_reach_the_run_pass():
    cfg = load_config(str(HEADLINE), {'train_dataloader.dataset.data_root': 'elsewhere',
                                      'compile': True, 'new_variable': 1})
    assert cfg.train_dataloader.dataset.data_root == 'elsewhere'
    assert (cfg.compile, cfg.new_variable) == (True, 1)


def test_the_monitor_and_a_files_retarget_say_what_to_set_instead(tmp_path):
    with pytest.raises(ValueError, match='default_hooks.checkpoint.save_best and the plateau'):
        load_config(str(HEADLINE), {'monitor': 'Dice'})
    config = tmp_path / 'old.py'
    config.write_text(f"_base_ = ['{HEADLINE}']\nretarget = dict(data_root='x')\n")
    with pytest.raises(ValueError, match='old.py: `retarget = dict.*is no longer read'):
        load_config(str(config))


def test_the_tensorboard_switch_names_its_replacement(tmp_path):
    message = ('`tensorboard` is no longer read. Log to TensorBoard with --vis-backend '
               "tensorboard (tools/train.py), or add dict(type='TensorboardVisBackend') to "
               'visualizer.vis_backends.')
    with pytest.raises(ValueError) as error:
        load_config(str(HEADLINE), {'tensorboard': True})
    assert str(error.value) == f'--cfg-options tensorboard=...: {message}'
    config = tmp_path / 'old.py'
    config.write_text(f"_base_ = ['{HEADLINE}']\ntensorboard = True\n")
    with pytest.raises(ValueError) as error:
        load_config(str(config))
    assert str(error.value) == f'{config}: `tensorboard = ...`: {message}'


def test_batch_size_and_length_variables_name_their_options():
    with pytest.raises(ValueError) as error:
        load_config(str(CLS), {'batch_size': 4})
    assert str(error.value).endswith(
        '(train_dataloader.batch_size, val_dataloader.batch_size, test_dataloader.batch_size) '
        'when the file was read, and changing it now would change nothing the run reads. Use '
        '--batch-size, which sets the training batch per process (the tools that test set '
        'their own loaders).')
    with pytest.raises(ValueError, match='For a short run use --iters N'):
        load_config(str(DINO), {'max_epochs': 1})


def test_the_demo_config_is_the_headline_retargeted():
    """The demo config sets by hand what --data-root, --pretrained none and --img-size 128 set
    in the headline."""
    demo = load_config(str(DEMO))
    retargeted = load_config(str(HEADLINE), data_root='data/demo_isic2018', pretrained=None,
                             img_size=128)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert demo[name].dataset.data_root == retargeted[name].dataset.data_root
        assert demo[name].dataset.pipeline == retargeted[name].dataset.pipeline
    assert demo.model.data_preprocessor == retargeted.model.data_preprocessor
    assert demo.model.backbone == dict(retargeted.model.backbone, drop_path_rate=0.0)


def test_dataloaders_reading_different_folders_are_not_guessed(headline):
    cfg = copy.deepcopy(headline)
    cfg.test_dataloader.dataset.data_root = 'other'
    with pytest.raises(ValueError, match="read different folders .*test_dataloader.dataset"
                       ".data_root='other'"):
        retarget(cfg, data_root='mine')
