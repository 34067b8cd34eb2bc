"""``python -m medtrans list``: every registered name with its module, plugins included."""
import pytest

from medtrans.__main__ import list_registered, main
from medtrans.registry import DATASETS, MODELS


def test_lists_medtrans_and_plugin_modules_with_their_module():
    lines = list_registered(['models', 'DATASETS']).splitlines()
    models = lines[:len(MODELS.module_dict) + 1]
    assert models[0] == f"models ({len(MODELS.module_dict)} in scope 'medtrans')"
    listed = {line.split()[0]: line.split()[1] for line in models[1:]}
    assert listed == {name: cls.__module__ for name, cls in MODELS.module_dict.items()}
    assert listed['TinyConvNet'] == 'medtrans_example_plugin.tiny_convnet'
    assert lines[len(models)] == f"datasets ({len(DATASETS.module_dict)} in scope 'medtrans')"


def test_an_unknown_registry_is_named(capsys):
    assert main(['list', 'modelz']) == 2
    assert 'unknown registry modelz; known: runners, loops' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['lst'])
