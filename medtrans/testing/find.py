"""How the fuzz tests and tools find a dataset class's synthetic layout.

See :mod:`medtrans.testing` for the protocol.
"""
import functools
import os.path as osp
from importlib.metadata import EntryPoint
from types import MappingProxyType
from typing import Callable, List, Mapping, Optional, Tuple

from medtrans.utils import entry_points_of

from .layouts import MEDTRANS_LAYOUTS, SyntheticLayout

__all__ = ['ENTRY_POINT_GROUP', 'plugin_layouts', 'find_layout', 'write_synthetic_layout']

#: The entry-point group in which a third-party package declares its datasets' layouts: entry
#: name = the dataset class name, value = ``'package.module:function'``.
ENTRY_POINT_GROUP = 'medtrans.synthetic_layouts'

LayoutFn = Callable[[str], SyntheticLayout]


@functools.cache
def plugin_layouts() -> Mapping[str, Tuple[EntryPoint, ...]]:
    """The entry points of :data:`ENTRY_POINT_GROUP` in the installed packages, by name.

    Read once per process (``plugin_layouts.cache_clear()`` reads them again); the functions
    they name are imported only when :func:`find_layout` needs one.

    Returns:
        Mapping[str, tuple[EntryPoint, ...]]: Dataset class name -> its entry points (more than
        one when packages declare the same name, which :func:`find_layout` refuses).
    """
    by_name = {}
    for ep in entry_points_of(ENTRY_POINT_GROUP):
        by_name.setdefault(ep.name, []).append(ep)
    return MappingProxyType({name: tuple(eps) for name, eps in by_name.items()})


def _how_to_declare(name: str) -> str:
    return (f"medtrans' own datasets add '{name}': <function> to MEDTRANS_LAYOUTS in "
            'medtrans/testing/layouts/__init__.py; a plugin declares an entry point in its '
            f'setup.cfg, "[options.entry_points] {ENTRY_POINT_GROUP} = {name} = '
            'my_plugin.synthetic:my_layout" (or pyproject.toml\'s '
            f'[project.entry-points."{ENTRY_POINT_GROUP}"]), and reinstalls itself '
            '(see docs/datasets.md, "Fuzz tests").')


def _load(ep: EntryPoint) -> LayoutFn:
    """The function an entry point names, or a ValueError naming the entry point."""
    where = f'entry point {ep.name} = {ep.value!r} (group {ENTRY_POINT_GROUP}'
    where += f', package {ep.dist.name})' if getattr(ep, 'dist', None) else ')'
    if not (ep.module and ep.attr):
        raise ValueError(f"{where} is not 'package.module:function'.")
    try:
        return ep.load()
    except (ImportError, AttributeError) as err:
        raise ValueError(f'{where} could not be imported: {err}') from err


def _describe(func: object) -> str:
    return f'{getattr(func, "__module__", "?")}:{getattr(func, "__qualname__", func)}'


def find_layout(dataset_cls: type,
                extra_layouts: Optional[Mapping[str, LayoutFn]] = None) -> LayoutFn:
    """The layout function of a dataset class.

    Walks the class's MRO, so a subclass inherits its parent's layout unless it has its own,
    and looks each class name up in ``extra_layouts``, then in :data:`MEDTRANS_LAYOUTS` and the
    entry points of :data:`ENTRY_POINT_GROUP` (:func:`plugin_layouts`).

    Args:
        dataset_cls (type): A dataset class.
        extra_layouts (Mapping[str, Callable], optional): More layouts by class name (a test's
            own dataset classes), which take precedence. Defaults to None.

    Returns:
        Callable[[str], SyntheticLayout]: Its layout function.

    Raises:
        LookupError: No class of its MRO has a layout.
        ValueError: Its name is declared both by medtrans and by an entry point, or by two
            entry points; the entry point is not ``'module:function'`` or does not import;
            or the layout is not callable.
    """
    plugins = plugin_layouts()
    for cls in dataset_cls.__mro__:
        name = cls.__name__
        if extra_layouts is not None and name in extra_layouts:
            func, source = extra_layouts[name], f'extra_layouts[{name!r}]'
        elif name in MEDTRANS_LAYOUTS or name in plugins:
            eps = plugins.get(name, ())
            declared: List[str] = [f'{ep.value} (entry point of '
                                   f'{ep.dist.name if getattr(ep, "dist", None) else "?"})'
                                   for ep in eps]
            if name in MEDTRANS_LAYOUTS:
                declared.insert(0, f'{_describe(MEDTRANS_LAYOUTS[name])} (MEDTRANS_LAYOUTS)')
            if len(declared) > 1:
                raise ValueError(f'{name} has more than one synthetic layout: '
                                 f'{", ".join(declared)}; expected one.')
            if name in MEDTRANS_LAYOUTS:
                func, source = MEDTRANS_LAYOUTS[name], f'MEDTRANS_LAYOUTS[{name!r}]'
            else:
                func, source = _load(eps[0]), f'entry point {name} = {eps[0].value!r}'
        else:
            continue
        if not callable(func):
            raise ValueError(f'{source}, the layout of {dataset_cls.__name__}, is a '
                             f'{type(func).__name__}; expected a function(root) returning a '
                             'SyntheticLayout.')
        return func
    raise LookupError(
        f'{dataset_cls.__name__} has no synthetic layout: no class of its MRO is in '
        f'MEDTRANS_LAYOUTS or the entry points of {ENTRY_POINT_GROUP}. Every registered dataset '
        f'needs one to join the fuzz tests: {_how_to_declare(dataset_cls.__name__)}')


def write_synthetic_layout(dataset_cls: type, root: str,
                           extra_layouts: Optional[Mapping[str, LayoutFn]] = None
                           ) -> SyntheticLayout:
    """Write a dataset class's synthetic layout under ``root`` and check what it returns.

    Args:
        dataset_cls (type): A dataset class with a layout (:func:`find_layout`).
        root (str): Folder to write the layout to.
        extra_layouts (Mapping[str, Callable], optional): As for :func:`find_layout`.

    Returns:
        SyntheticLayout: The layout, with at least one file and every listed file under ``root``.

    Raises:
        LookupError: The class has no layout.
        TypeError: The layout function returned something else than a
            :class:`SyntheticLayout`.
        ValueError: A layout that cannot be loaded (:func:`find_layout`), or one that lists no
            file, a file that does not exist, a file outside ``root``, or no target key.
    """
    layout_fn = find_layout(dataset_cls, extra_layouts)
    layout = layout_fn(root)
    name = f'{_describe(layout_fn)} (layout of {dataset_cls.__name__})'
    if not isinstance(layout, SyntheticLayout):
        raise TypeError(f'{name} returned {type(layout).__name__}; expected a SyntheticLayout.')
    files = layout.files()
    if not files:
        raise ValueError(f'{name} listed no files; expected images, masks or label tables.')
    if not layout.target_keys:
        raise ValueError(f'{name} named no target_keys; expected the ground-truth keys of a '
                         'sample.')
    top = osp.realpath(root)
    for kind, paths in files.items():
        for path in paths:
            if not osp.isfile(path):
                raise ValueError(f'{name} listed {kind} file "{path}", which does not exist.')
            if not osp.realpath(path).startswith(top + osp.sep):
                raise ValueError(f'{name} listed {kind} file "{path}" outside "{root}".')
    return layout
