"""Config preparation shared by the tools: work dir, switches, guards."""
from pathlib import Path

import pytest
from mmengine.config import Config

from medtrans.apis import (
    check_work_dir,
    load_config,
    prepare_config,
)

REPO = Path(__file__).resolve().parents[2]
HEADLINE = str(REPO / 'configs' / 'deeplab3_deit_s_isic2018.py')


def test_work_dir_priority(tmp_path):
    cfg = load_config(HEADLINE)
    prepare_config(cfg, HEADLINE)
    assert cfg.work_dir == './work_dirs/deeplab3_deit_s_isic2018'
    cfg = load_config(HEADLINE, {'train_cfg.max_iters': 7, 'work_dir': 'from_cfg'})
    prepare_config(cfg, HEADLINE)
    assert cfg.work_dir == 'from_cfg' and cfg.train_cfg.max_iters == 7
    prepare_config(cfg, HEADLINE, work_dir=str(tmp_path))
    assert cfg.work_dir == str(tmp_path)


def test_amp_switch(tmp_path):
    cfg = load_config(HEADLINE)
    prepare_config(cfg, HEADLINE, work_dir=str(tmp_path), amp=True)
    # AMP keeps the non-finite guard and its settings.
    assert cfg.optim_wrapper.type == 'GuardedAmpOptimWrapper'
    assert cfg.optim_wrapper.on_non_finite == 'raise'


def test_resume_argument_forms(tmp_path):
    # Nothing saved yet: the run starts, from the config's own load_from.
    options = {'load_from': 'pretraining.pth'}
    cfg = prepare_config(load_config(HEADLINE, options), HEADLINE, work_dir=str(tmp_path),
                         resume=True)
    assert cfg.resume is False and cfg.load_from == 'pretraining.pth'
    # Once the run saved a checkpoint, it resumes from its newest, whatever load_from says.
    (tmp_path / 'iter_5.pth').write_bytes(b'x')
    cfg = prepare_config(load_config(HEADLINE, options), HEADLINE, work_dir=str(tmp_path),
                         resume=True)
    assert cfg.resume is True and cfg.load_from == str(tmp_path / 'iter_5.pth')
    ckpt = str(tmp_path / 'elsewhere' / 'iter_3.pth')
    cfg = prepare_config(load_config(HEADLINE), HEADLINE, work_dir=str(tmp_path), resume=ckpt)
    assert cfg.resume is True and cfg.load_from == ckpt


def test_existing_checkpoints_are_not_overwritten(tmp_path):
    cfg = Config(dict(work_dir=str(tmp_path), resume=False))
    check_work_dir(cfg)  # empty: fine
    (tmp_path / 'iter_100.pth').write_bytes(b'')
    with pytest.raises(FileExistsError, match='iter_100.pth'):
        check_work_dir(cfg)
    cfg.resume = True
    check_work_dir(cfg)


CLS = str(REPO / 'configs/classification/deit-s/deit-s_in1k_1xb64_plateau_aptos2019-224.py')
DINO = str(REPO / 'configs/dino/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96.py')


def test_accumulation_switch_refuses_what_it_cannot_do(tmp_path):
    with pytest.raises(ValueError, match='positive integer, got 0'):
        prepare_config(load_config(CLS), CLS, work_dir=str(tmp_path), accumulate=0)
    with pytest.raises(ValueError, match='DINO updates its teacher every iteration'):
        prepare_config(load_config(DINO), DINO, work_dir=str(tmp_path), accumulate=2)
    cfg = load_config(HEADLINE)
    cfg.pop('auto_scale_lr')
    with pytest.raises(ValueError, match='auto_scale_lr.base_batch_size'):
        prepare_config(cfg, HEADLINE, work_dir=str(tmp_path), auto_scale_lr=True)


DINO = str(REPO / 'configs' / 'dino' / 'dino_deit-s_in1k_4xb64_300e_isic2019-224-96.py')


def test_iters_and_batch_size_set_the_loop_and_the_training_batch(tmp_path):
    cfg = prepare_config(load_config(DINO), DINO, work_dir=str(tmp_path), iters=2, batch_size=4)
    assert cfg.train_cfg == dict(type='IterBasedEpochsTrainLoop', max_epochs=300, val_begin=10,
                                 val_interval=10, max_iters=2)
    assert cfg.train_dataloader.batch_size == 4 and cfg.auto_scale_lr.enable  # DINO's rule
    cfg = prepare_config(load_config(HEADLINE), HEADLINE, work_dir=str(tmp_path), iters=3)
    assert (cfg.train_cfg.type, cfg.train_cfg.max_iters) == ('ResumableIterBasedTrainLoop', 3)


def test_iters_refuses_a_loop_of_whole_epochs(tmp_path):
    cfg = load_config(HEADLINE)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2)  # MMEngine's EpochBasedTrainLoop
    with pytest.raises(ValueError) as error:
        prepare_config(cfg, HEADLINE, work_dir=str(tmp_path), iters=2)
    assert str(error.value) == (
        "--iters: train_cfg.type 'EpochBasedTrainLoop' counts whole epochs and takes no "
        'max_iters; train fewer epochs with --cfg-options train_cfg.max_epochs=N, or use an '
        "iteration-based loop ('ResumableIterBasedTrainLoop', or 'IterBasedEpochsTrainLoop' for "
        'a length in epochs).')
    with pytest.raises(ValueError, match='--batch-size must be a positive integer, got 0'):
        prepare_config(load_config(HEADLINE), HEADLINE, work_dir=str(tmp_path), batch_size=0)
