"""What a layout function returns: :class:`SyntheticLayout`.

See :mod:`medtrans.testing` for the protocol.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

__all__ = ['SyntheticLayout', 'FILE_KINDS']

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
