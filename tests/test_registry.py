"""A config's type is resolved through the registry, so a plugin's subclass counts as its base."""
from mmengine.registry import Registry
from mmengine.runner import TestLoop

from medtrans.engine import KNNTestLoop
from medtrans.registry import LOOPS, is_registered_subclass

# A plugin package's registry: a child of medtrans's, with a subclass under its own name.
PLUGIN_LOOPS = Registry('loop', parent=LOOPS, scope='medtrans_test_plugin')


@PLUGIN_LOOPS.register_module()
class PluginKNNLoop(KNNTestLoop):
    pass


def test_names_and_classes_resolve_to_their_registered_class():
    for type_ in ('KNNTestLoop', 'medtrans.KNNTestLoop', KNNTestLoop,
                  'medtrans_test_plugin.PluginKNNLoop', PluginKNNLoop):
        assert is_registered_subclass(LOOPS, type_, KNNTestLoop), type_
    assert is_registered_subclass(LOOPS, 'KNNTestLoop', (TestLoop, ))


def test_other_and_unknown_types_are_not_subclasses():
    # TestLoop is MMEngine's, found through the parent registry.
    for type_ in ('TestLoop', 'ValLoop', 'KNNTestLoopTypo', None, TestLoop):
        assert not is_registered_subclass(LOOPS, type_, KNNTestLoop), type_
