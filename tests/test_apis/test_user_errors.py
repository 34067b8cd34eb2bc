"""Errors a user can act on: a registry miss names its config field and the closest registered
names; a missing config file is one line."""
import argparse
from pathlib import Path

import pytest

from medtrans.apis import add_config_args, build_runner, load_config, prepare_config

HEADLINE = str(Path(__file__).resolve().parents[2] / 'configs' / 'deeplab3_deit_s_isic2018.py')


def _runner(tmp_path, options):
    cfg = load_config(HEADLINE, options, pretrained=None)
    return build_runner(prepare_config(cfg, HEADLINE, work_dir=str(tmp_path)))


def test_a_medtrans_type_in_an_mmseg_section_gets_its_scope_prefix(tmp_path):
    with pytest.raises(KeyError) as error:
        _runner(tmp_path, {'model.backbone.type': 'DeiT'})
    assert error.value.args[0].startswith(
        "model.backbone.type: type 'DeiT' is not registered in the model registry of scope "
        "'mmseg'. Did you mean 'medtrans.DeiT',")
    assert 'is not in the mmseg::model registry' in str(error.value.__cause__)


def test_a_misspelt_dataset_is_named_when_the_run_starts(tmp_path):
    runner = _runner(tmp_path, {'train_dataloader.dataset.type': 'ISIC2018Task1Datset'})
    with pytest.raises(KeyError, match="train_dataloader.dataset.type: type 'ISIC2018Task1Datset"
                       "' is not registered in the dataset registry of scope 'medtrans'. Did "
                       "you mean 'ISIC2018Task1Dataset'"):
        runner.train()


def test_a_missing_config_file_is_one_line(capsys):
    parser = argparse.ArgumentParser(prog='train.py')
    add_config_args(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(['configs/nope.py'])
    assert capsys.readouterr().err.splitlines()[-1] == (
        'train.py: error: argument config: no such config file: configs/nope.py')


def test_a_type_missing_in_its_scope_is_found_before_anything_is_built(tmp_path):
    from medtrans.apis import PreflightError, check_before_run

    cfg = prepare_config(load_config(HEADLINE, {'model.backbone.type': 'DeiT'}, pretrained=None),
                         HEADLINE, work_dir=str(tmp_path), iters=1)
    with pytest.raises(PreflightError) as error:
        check_before_run(cfg, 'train')
    (problem, ) = [p for p in error.value.problems if p.startswith('model.backbone.type')]
    assert problem.startswith(
        "model.backbone.type: type 'DeiT' is not registered in any registry of scope 'mmseg'. "
        "Did you mean 'medtrans.DeiT',")
