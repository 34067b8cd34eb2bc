"""Third-party packages register modules via the entry point and via custom_imports."""
import subprocess
import sys
import textwrap
from pathlib import Path

from medtrans.registry import MODELS
from medtrans.setup_env import load_plugins, register_all_modules


def test_entry_point_plugin_is_loaded():
    loaded = load_plugins()
    assert 'medtrans_example_plugin' in loaded
    assert MODELS.get('TinyConvNet') is not None


def test_plugin_declares_its_dataset_layout_by_entry_point():
    from importlib.metadata import entry_points

    from medtrans_example_plugin import LesionFolderDataset
    from medtrans_example_plugin.synthetic import lesion_folders_layout

    from medtrans.testing import ENTRY_POINT_GROUP, find_layout
    assert 'LesionFolderDataset' in entry_points(group=ENTRY_POINT_GROUP).names
    assert find_layout(LesionFolderDataset) is lesion_folders_layout


def test_register_all_modules_sets_scope_and_registers():
    register_all_modules()
    from mmengine.registry import DefaultScope
    assert DefaultScope.get_current_instance().scope_name == 'medtrans'
    assert MODELS.get('DeiT') is not None
    assert MODELS.get('TinyConvNet') is not None


def test_custom_imports_in_config_registers_plugin(tmp_path):
    # A fresh interpreter, so that nothing is registered before the config is read.
    cfg_file = tmp_path / 'plugin_cfg.py'
    cfg_file.write_text(textwrap.dedent("""
        custom_imports = dict(imports=['medtrans_example_plugin'], allow_failed_imports=False)
        default_scope = 'medtrans'
        model = dict(type='TinyConvNet', channels=8)
    """))
    code = textwrap.dedent(f"""
        import torch
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        import medtrans
        from medtrans.registry import MODELS
        assert 'TinyConvNet' not in MODELS.module_dict
        cfg = Config.fromfile({str(cfg_file)!r})
        with DefaultScope.overwrite_default_scope('medtrans'):
            model = MODELS.build(cfg.model)
        out = model(torch.zeros(1, 3, 32, 32))
        print(tuple(out[-1].shape))
    """)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith('(1, 8, 8, 8)')


def test_plugin_backbone_has_the_embedding_interface():
    import torch

    from medtrans.models import EmbeddingBackbone
    register_all_modules(init_default_scope=False)
    backbone = MODELS.build(dict(type='medtrans.TinyConvNet', channels=8))
    assert isinstance(backbone, EmbeddingBackbone)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(backbone.forward_embedding(x), backbone(x)[-1].mean(dim=(2, 3)))
    assert backbone.forward_embedding(x).shape == (2, backbone.num_features)


def test_custom_imports_appear_in_the_plugin_log_line(tmp_path):
    import logging

    from mmengine.logging import MMLogger

    from medtrans.apis import load_config
    cfg_file = tmp_path / 'plugin_cfg.py'
    cfg_file.write_text("custom_imports = dict(imports=['medtrans_example_plugin.tiny_convnet'])\n")
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        load_config(str(cfg_file))
    finally:
        logger.removeHandler(handler)
    assert 'medtrans plugins loaded: medtrans_example_plugin, ' \
        'medtrans_example_plugin.tiny_convnet (custom_imports)' in messages


def test_plugin_config_trains_on_the_plugin_dataset(tmp_path):
    import json

    import cv2
    import numpy as np

    from medtrans.apis import build_runner, load_config, prepare_config
    rng = np.random.default_rng(0)
    for split, count in (('train', 4), ('val', 2)):
        for folder in ('images', 'masks'):
            (tmp_path / 'data' / split / folder).mkdir(parents=True)
        for index in range(count):
            mask = np.zeros((48, 40), np.uint8)
            mask[10:30, 8:20] = 255
            image = rng.integers(0, 256, (48, 40, 3), np.uint8)
            cv2.imwrite(str(tmp_path / 'data' / split / 'images' / f'{index}.png'), image)
            cv2.imwrite(str(tmp_path / 'data' / split / 'masks' / f'{index}.png'), mask)
    config = str(Path(__file__).resolve().parents[2] / 'projects' / 'example_plugin' / 'configs' /
                 'deeplab3_deit_s_lesion_folders.py')
    cfg = load_config(config, {'train_cfg.max_iters': 1, 'train_cfg.val_interval': 1,
                               'train_dataloader.batch_size': 2},
                      data_root=str(tmp_path / 'data'), img_size=32)
    runner = build_runner(prepare_config(cfg, config, work_dir=str(tmp_path / 'work')))
    runner.train()
    assert type(runner.train_dataloader.dataset).__name__ == 'LesionFolderDataset'
    record = json.loads((tmp_path / 'work' / 'metrics' / 'val_1.json').read_text())
    assert 'IoU' in record['metrics']


def test_list_shows_what_a_configs_plain_folder_plugin_registers(tmp_path, repo_root, capsys):
    import os

    from medtrans.__main__ import main

    folder = tmp_path / 'lab'
    folder.mkdir()
    (folder / 'my_lab_plugin.py').write_text(textwrap.dedent("""
        from torch import nn

        from medtrans.registry import MODELS, TRANSFORMS


        @MODELS.register_module()
        class MyLabNet(nn.Module):
            pass


        @TRANSFORMS.register_module()
        class MyLabLoad:
            pass
    """))
    config = tmp_path / 'cfg.py'
    config.write_text("custom_imports = dict(imports=['my_lab_plugin'], "
                      'allow_failed_imports=False)\n')

    # A fresh interpreter: the plugin's names stay out of this process's registries.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder),
                                                       os.environ.get('PYTHONPATH', '')]))
    found = subprocess.run([sys.executable, '-m', 'medtrans', 'list', '--config', str(config)],
                           cwd=repo_root, env=env, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines()[-5:] == [
        f"{config}: custom_imports ['my_lab_plugin']",
        'transforms (1 from custom_imports)', '  MyLabLoad  my_lab_plugin',
        'models (1 from custom_imports)', '  MyLabNet  my_lab_plugin']
    # Without PYTHONPATH the folder is not on sys.path: the message says where modules are found
    # (the import fails, so this process registers nothing).
    assert main(['list', '--config', str(config)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"python -m medtrans list: {config}: custom_imports ['my_lab_plugin'] could not be "
        "imported (No module named 'my_lab_plugin'). A plugin module is found as an installed "
        'package (pip install -e PATH), or as a module in a plain folder named on PYTHONPATH '
        '(PYTHONPATH=/path/to/folder python ...); see docs/plugins.md.')
