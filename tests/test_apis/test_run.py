"""Run assembly shared by the tools: work dir, placeholders, switches, guards."""
from pathlib import Path

import pytest
from mmengine.config import Config

from medtrans.apis import (
    check_work_dir,
    fill_work_dir,
    latest_checkpoint,
    load_config,
    prepare_config,
)

REPO = Path(__file__).resolve().parents[2]
HEADLINE = str(REPO / 'configs' / 'deeplab3_deit_s_isic2018.py')


def test_work_dir_priority_and_placeholder(tmp_path):
    cfg = load_config(HEADLINE)
    prepare_config(cfg, HEADLINE)
    assert cfg.work_dir == './work_dirs/deeplab3_deit_s_isic2018'
    cfg = load_config(HEADLINE, {'train_cfg.max_iters': 7})
    prepare_config(cfg, HEADLINE, work_dir=str(tmp_path))
    assert cfg.train_cfg.max_iters == 7
    assert cfg.train_dataloader.dataset.split_file == f'{tmp_path}/splits/isic2018_task1_seed0.json'
    assert '{work_dir}' not in cfg.pretty_text


def test_fill_work_dir_walks_nested_containers():
    node = dict(a=['{work_dir}/x', ('{work_dir}/y', 3)], b=dict(c='{work_dir}'))
    assert fill_work_dir(node, '/w') == dict(a=['/w/x', ('/w/y', 3)], b=dict(c='/w'))


def test_tensorboard_switch_and_amp(tmp_path):
    cfg = load_config(HEADLINE, {'tensorboard': True})
    prepare_config(cfg, HEADLINE, work_dir=str(tmp_path), amp=True)
    assert [b['type'] for b in cfg.visualizer.vis_backends] == [
        'LocalVisBackend', 'TensorboardVisBackend']
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert 'on_non_finite' not in cfg.optim_wrapper


def test_resume_argument_forms(tmp_path):
    cfg = prepare_config(load_config(HEADLINE), HEADLINE, work_dir=str(tmp_path), resume=True)
    assert cfg.resume is True and cfg.load_from is None
    ckpt = str(tmp_path / 'iter_5.pth')
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


def test_resume_picks_the_newest_complete_checkpoint(tmp_path):
    # A kill can leave MMEngine's in-place `last_checkpoint` pointer empty or one behind;
    # checkpoints themselves are written atomically, so the highest-numbered one is complete.
    for it in (2, 4, 10):
        (tmp_path / f'iter_{it}.pth').write_bytes(b'x')
    (tmp_path / 'best_IoU_iter_4.pth').write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text('')
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_10.pth')
    cfg = prepare_config(load_config(HEADLINE), HEADLINE, work_dir=str(tmp_path), resume=True)
    assert cfg.resume is True and cfg.load_from == str(tmp_path / 'iter_10.pth')


def test_resume_falls_back_to_the_pointer(tmp_path):
    elsewhere = tmp_path / 'out' / 'iter_3.pth'
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(str(elsewhere))
    assert latest_checkpoint(str(tmp_path)) == str(elsewhere)
    assert latest_checkpoint(str(tmp_path / 'out' / 'missing')) is None
