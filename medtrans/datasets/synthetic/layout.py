"""How a dataset class names its synthetic layout, and how the fuzz tests find it.

See :mod:`medtrans.datasets.synthetic` for the protocol.
"""
import importlib
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

__all__ = ['SyntheticLayout', 'LAYOUT_ATTRIBUTE', 'FILE_KINDS', 'find_layout',
           'write_synthetic_layout']

#: Class attribute of a dataset class: ``'package.module:function'`` of its layout function.
LAYOUT_ATTRIBUTE = 'SYNTHETIC_LAYOUT'
#: The kinds of file a layout lists, each with its own corruptions in the fuzz tests.
FILE_KINDS = ('images', 'masks', 'label_tables', 'dicom_files', 'h5_files')


@dataclass
class SyntheticLayout:
    """A tiny valid on-disk layout of a dataset, as written by its layout function.

    Args:
        root (str): The folder the layout was written to.
        dataset_cfg (dict): Keyword arguments that build the dataset class over the layout
            (``data_root`` and the like), without ``pipeline``.
        pipeline (list[dict]): The loading transforms that turn one of the dataset's data infos
            into a sample, e.g. ``[dict(type='LoadImageStrict'), dict(type='LoadBinaryMask')]``.
        target_keys (tuple[str]): Keys of a loaded sample that hold its ground truth (e.g.
            ``'gt_seg_map'``, ``'gt_label'``); a corrupted file must never change them.
        images (list[str]): Paths of the image files under ``root``. Defaults to [].
        masks (list[str]): Paths of the mask files under ``root``. Defaults to [].
        label_tables (list[str]): Paths of the CSV label tables under ``root``. Defaults to [].
        dicom_files (list[str]): Paths of the DICOM files under ``root``. Defaults to [].
        h5_files (list[str]): Paths of the HDF5 files under ``root``. Defaults to [].
    """

    root: str
    dataset_cfg: dict
    pipeline: List[dict]
    target_keys: Tuple[str, ...]
    images: List[str] = field(default_factory=list)
    masks: List[str] = field(default_factory=list)
    label_tables: List[str] = field(default_factory=list)
    dicom_files: List[str] = field(default_factory=list)
    h5_files: List[str] = field(default_factory=list)

    def files(self) -> Dict[str, List[str]]:
        """The layout's files by kind (:data:`FILE_KINDS`), kinds without files left out."""
        return {kind: list(getattr(self, kind)) for kind in FILE_KINDS if getattr(self, kind)}


def find_layout(dataset_cls: type) -> Callable[[str], SyntheticLayout]:
    """Import the layout function that a dataset class names in :data:`LAYOUT_ATTRIBUTE`.

    Args:
        dataset_cls (type): A dataset class.

    Returns:
        Callable[[str], SyntheticLayout]: Its layout function.

    Raises:
        TypeError: The class names no layout function.
        ValueError: The reference is not ``'module:function'``, or does not resolve to a
            callable (the import error, if any, is chained).
    """
    ref = getattr(dataset_cls, LAYOUT_ATTRIBUTE, None)
    name = f'{dataset_cls.__name__}.{LAYOUT_ATTRIBUTE}'
    if ref is None:
        raise TypeError(
            f'{dataset_cls.__name__} has no {LAYOUT_ATTRIBUTE}; every registered dataset names '
            "its synthetic layout function as 'package.module:function' to join the fuzz "
            'tests (see medtrans/datasets/synthetic/__init__.py).')
    module_name, sep, func_name = ref.partition(':') if isinstance(ref, str) else ('', '', '')
    if not (module_name and sep and func_name):
        raise ValueError(f"{name} is {ref!r}; expected a string 'package.module:function'.")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f'{name} is {ref!r}, which could not be imported: {err}') from err
    if not callable(func):
        raise ValueError(f'{name} is {ref!r}, which is a {type(func).__name__}; expected a '
                         'function(root) returning a SyntheticLayout.')
    return func


def write_synthetic_layout(dataset_cls: type, root: str) -> SyntheticLayout:
    """Write a dataset class's synthetic layout under ``root`` and check what it returns.

    Args:
        dataset_cls (type): A dataset class naming its layout function (:func:`find_layout`).
        root (str): Folder to write the layout to.

    Returns:
        SyntheticLayout: The layout, with at least one file and every listed file under ``root``.

    Raises:
        TypeError: The class names no layout function, or that function returned something
            else than a :class:`SyntheticLayout`.
        ValueError: A reference that does not resolve, or a layout that lists no file, a file
            that does not exist, a file outside ``root``, or no target key.
    """
    layout_fn = find_layout(dataset_cls)
    layout = layout_fn(root)
    name = f'{getattr(dataset_cls, LAYOUT_ATTRIBUTE)} (layout of {dataset_cls.__name__})'
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
