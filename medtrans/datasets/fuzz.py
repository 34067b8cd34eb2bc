"""The protocol by which a dataset class joins the fuzz tests.

``tests/test_datasets/test_fuzz.py`` corrupts the files of every dataset class registered in
:data:`medtrans.registry.DATASETS` and checks that each corruption gives either the correct sample
or a clear error naming the file. To be fuzzed without test code of its own, a dataset class
implements one classmethod, :data:`PROTOCOL_METHOD`::

    @classmethod
    def synthetic_layout(cls, root: str) -> SyntheticLayout:
        ...  # write a tiny valid copy of the dataset's on-disk layout under ``root``

A registered dataset class without it fails the tests, so that none opts out silently.
"""
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

__all__ = ['SyntheticLayout', 'PROTOCOL_METHOD', 'FILE_KINDS', 'missing_protocol',
           'write_synthetic_layout']

#: Name of the classmethod that a dataset class implements to join the fuzz tests.
PROTOCOL_METHOD = 'synthetic_layout'
#: The kinds of file a layout lists, each with its own corruptions in the fuzz tests.
FILE_KINDS = ('images', 'masks', 'label_tables')


@dataclass
class SyntheticLayout:
    """A tiny valid on-disk layout of a dataset, as written by its ``synthetic_layout``.

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
    """

    root: str
    dataset_cfg: dict
    pipeline: List[dict]
    target_keys: Tuple[str, ...]
    images: List[str] = field(default_factory=list)
    masks: List[str] = field(default_factory=list)
    label_tables: List[str] = field(default_factory=list)

    def files(self) -> Dict[str, List[str]]:
        """The layout's files by kind (:data:`FILE_KINDS`), kinds without files left out."""
        return {kind: list(getattr(self, kind)) for kind in FILE_KINDS if getattr(self, kind)}


def missing_protocol(module_dict: Dict[str, type]) -> List[str]:
    """Names of the dataset classes of a registry that do not implement the protocol.

    Args:
        module_dict (dict[str, type]): A registry's ``module_dict``.

    Returns:
        list[str]: Sorted names whose class has no callable :data:`PROTOCOL_METHOD`.
    """
    return sorted(name for name, cls in module_dict.items()
                  if not callable(getattr(cls, PROTOCOL_METHOD, None)))


def write_synthetic_layout(dataset_cls: type, root: str) -> SyntheticLayout:
    """Call a dataset class's ``synthetic_layout`` and check what it returns.

    Args:
        dataset_cls (type): A dataset class implementing the protocol.
        root (str): Folder to write the layout to.

    Returns:
        SyntheticLayout: The layout, with at least one file and every listed file under ``root``.

    Raises:
        TypeError: The class does not implement the protocol, or it returned something else
            than a :class:`SyntheticLayout`.
        ValueError: The layout lists no file, a file that does not exist, a file outside
            ``root``, or no target key.
    """
    method: Callable = getattr(dataset_cls, PROTOCOL_METHOD, None)
    if not callable(method):
        raise TypeError(f'{dataset_cls.__name__} has no classmethod {PROTOCOL_METHOD}(root); '
                        'every registered dataset implements it to join the fuzz tests '
                        '(see medtrans/datasets/fuzz.py).')
    layout = method(root)
    name = f'{dataset_cls.__name__}.{PROTOCOL_METHOD}'
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
