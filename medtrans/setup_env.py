"""Registration of medtrans modules and of third-party plugins.

It sits above every other layer (it imports the datasets, models, metrics and hooks that fill
the registries), so that the layers below never import upwards.
"""
import datetime
import warnings
from importlib import import_module
from typing import List, Sequence

from mmengine import DefaultScope
from mmengine.logging import print_log

from medtrans.fileio import install_safe_checkpoint_loader, register_atomic_backend
from medtrans.utils import entry_points_of, install_mmcv_ops_stub

PLUGIN_GROUP = 'medtrans.plugins'
# register_all_modules() runs more than once per process; the plugins are logged once.
_plugins_logged = False


def load_plugins() -> List[str]:
    """Import every module announced in the ``medtrans.plugins`` entry-point group.

    A third-party package registers its datasets and models by declaring, in its
    ``setup.cfg``, ``medtrans.plugins = name = package.module``.

    Returns:
        list[str]: The imported module names.
    """
    global _plugins_logged
    loaded = []
    for ep in entry_points_of(PLUGIN_GROUP):
        try:
            import_module(ep.value.split(':')[0])
        except Exception as err:
            raise ImportError(
                f'medtrans plugin "{ep.name}" ({ep.value}) failed to import: {err}') from err
        loaded.append(ep.value)
    if loaded and not _plugins_logged:
        log_plugins(loaded)
        _plugins_logged = True
    return loaded


def log_plugins(entry_point_modules: List[str], custom_imports: Sequence[str] = ()) -> None:
    """Log the plugins in one line: entry-point modules, then a config's ``custom_imports``."""
    names = [*entry_point_modules, *(f'{m} (custom_imports)' for m in custom_imports)]
    print_log(f'medtrans plugins loaded: {", ".join(names)}', logger='current')


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register all medtrans modules and installed plugins into the registries.

    It also applies, once per process, what medtrans needs outside its own registries (importing
    medtrans does none of it but the last):

    * MMEngine's checkpoint loading of local files (``load_from``, ``--resume``,
      ``mmengine.runner.load_checkpoint``) goes through
      :func:`medtrans.fileio.safe_load`, which never runs code from a file;
    * the atomic file backend ``medtrans_atomic_local`` that the configs' checkpoint hooks use
      (:func:`medtrans.fileio.register_atomic_backend`);
    * with mmcv-lite, a stand-in for ``mmcv._ext`` that ``import mmseg.models`` needs
      (:mod:`medtrans.utils.mmcv_ext`; importing medtrans has installed it already).

    Args:
        init_default_scope (bool): Whether to set the default scope to ``medtrans``, so that
            registries build medtrans modules by bare name. Defaults to True.
    """
    install_mmcv_ops_stub()
    install_safe_checkpoint_loader()
    register_atomic_backend()
    import medtrans.datasets  # noqa: F401
    import medtrans.engine  # noqa: F401
    import medtrans.evaluation  # noqa: F401
    import medtrans.models  # noqa: F401
    import medtrans.visualization  # noqa: F401
    load_plugins()

    if not init_default_scope:
        return
    never_created = (DefaultScope.get_current_instance() is None
                     or not DefaultScope.check_instance_created('medtrans'))
    if never_created:
        DefaultScope.get_instance('medtrans', scope_name='medtrans')
        return
    current = DefaultScope.get_current_instance()
    if current.scope_name != 'medtrans':
        warnings.warn(f'The current default scope "{current.scope_name}" is not "medtrans"; '
                      '`register_all_modules` switches it to "medtrans".', stacklevel=2)
        DefaultScope.get_instance(f'medtrans-{datetime.datetime.now()}', scope_name='medtrans')
