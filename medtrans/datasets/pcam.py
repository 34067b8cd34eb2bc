"""PatchCamelyon: tumour vs normal 96x96 patches of lymph node sections, read lazily from HDF5."""
import os.path as osp
from collections.abc import Mapping
from typing import Callable, Dict, Iterator, List, Tuple

import numpy as np

from medtrans.registry import DATASETS

from .classification import BaseClsDataset
from .transforms.h5 import open_pcam_patches

__all__ = ['PCamDataset', 'pcam_files', 'read_pcam_labels', 'PCAM_SPLITS']

#: Split name -> the part of the published file names (``..._split_<part>_{x,y}.h5``).
PCAM_SPLITS = {'train': 'train', 'val': 'valid', 'test': 'test'}
_LAYOUT = """\
  <data_root>/
    camelyonpatch_level_2_split_train_x.h5   camelyonpatch_level_2_split_train_y.h5
    camelyonpatch_level_2_split_valid_x.h5   camelyonpatch_level_2_split_valid_y.h5
    camelyonpatch_level_2_split_test_x.h5    camelyonpatch_level_2_split_test_y.h5
  (published gzip-compressed, *.h5.gz: decompress each once with `gunzip -k FILE.h5.gz`)"""
_Y_EXPECTED = ('expected an HDF5 file whose dataset "y" holds one label per patch, shape '
               '(N, 1, 1, 1), values 0 (normal) or 1 (tumour)')


def pcam_files(data_root: str, split: str) -> Tuple[str, str]:
    """The image (x) and label (y) files of a split, checked to exist.

    Args:
        data_root (str): The folder holding the files.
        split (str): A key of :data:`PCAM_SPLITS`.

    Returns:
        tuple[str, str]: The x and y paths.

    Raises:
        FileNotFoundError: A file is missing; when only its ``.h5.gz`` is there, the message
            says how to decompress it.
    """
    paths = tuple(osp.join(data_root, f'camelyonpatch_level_2_split_{PCAM_SPLITS[split]}_'
                                      f'{xy}.h5') for xy in 'xy')
    for path in paths:
        if osp.isfile(path):
            continue
        if osp.isfile(path + '.gz'):
            raise FileNotFoundError(
                f'PatchCamelyon file "{path}" not found, but "{path}.gz" is there: the files '
                'are published gzip-compressed, and HDF5 cannot read them compressed. '
                f'Decompress it once with `gunzip -k "{path}.gz"` (-k keeps the .gz; the train '
                'x file needs about 7.3 GB).')
        raise FileNotFoundError(f'PatchCamelyon file "{path}" not found; expected the split '
                                f'"{split}" in the layout:\n{_LAYOUT}')
    return paths


def read_pcam_labels(path: str) -> np.ndarray:
    """Read and check the labels of a PatchCamelyon ``*_y.h5`` file (a few hundred kB).

    Args:
        path (str): The file.

    Returns:
        np.ndarray: uint8 labels, shape (N, ), values 0 or 1.

    Raises:
        ValueError: Not a readable HDF5 file, or ``y`` missing, of another shape or type, or
            with other values, naming the file.
    """
    import h5py  # deferred: only PatchCamelyon needs it

    try:
        with h5py.File(path, 'r') as handle:
            labels = handle['y']
            dtype, shape = labels.dtype, labels.shape
            ok = (dtype.kind in 'iu' and len(shape) == 4 and shape[1:] == (1, 1, 1))
            values = labels[()] if ok else None
    except Exception as err:  # h5py raises OSError, KeyError, ... for a damaged file
        raise ValueError(f'"{path}" could not be read ({type(err).__name__}: {err}); '
                         f'{_Y_EXPECTED}.') from err
    if not ok:
        raise ValueError(f'"{path}": dataset "y" is {dtype} of shape {shape}; {_Y_EXPECTED}.')
    values = values.reshape(-1)
    bad = np.flatnonzero((values != 0) & (values != 1))
    if len(bad):
        raise ValueError(f'"{path}": label {bad[0]} is {values[bad[0]]} ({len(bad)} labels not '
                         f'0 or 1); {_Y_EXPECTED}.')
    return values.astype(np.uint8)


class _OfficialSplits(Mapping):
    """The official splits by name, each read from its files only when asked for."""

    def __init__(self, read: Callable[[str], List[dict]]) -> None:
        self._read = read

    def __getitem__(self, split: str) -> List[dict]:
        if split not in PCAM_SPLITS:
            raise KeyError(split)
        return self._read(split)

    def __iter__(self) -> Iterator[str]:
        return iter(PCAM_SPLITS)

    def __len__(self) -> int:
        return len(PCAM_SPLITS)


@DATASETS.register_module()
class PCamDataset(BaseClsDataset):
    """PatchCamelyon (Veeling et al. 2018): 327,680 patches of 96x96 RGB, tumour or normal.

    The dataset is published at https://github.com/basveeling/pcam (files on Zenodo, record
    2546921). ``data_root`` holds the HDF5 files, decompressed:

    .. code-block:: none

        camelyonpatch_level_2_split_{train,valid,test}_x.h5   uint8 (N, 96, 96, 3), RGB
        camelyonpatch_level_2_split_{train,valid,test}_y.h5   uint8 (N, 1, 1, 1), 1: tumour

    A label is 1 when the centre 32x32 region of the patch holds tumour tissue. The splits are
    the official ones, ``train`` (262,144 patches), ``val`` (the ``valid`` files, 32,768) and
    ``test`` (32,768); the study uses them as published, so there is no split file. Building a
    split reads its labels (y, a few hundred kB) and the shape of its x file; patches are read
    one at a time by :class:`~medtrans.datasets.transforms.LoadPCamPatch`, which each process
    (DataLoader worker) opens for itself. A sample holds ``h5_path`` (the x file) and
    ``h5_index`` (its row) instead of ``img_path``; its ``sample_id`` is
    ``'<split>/<row, 6 digits>'``.

    Args:
        data_root (str): The folder holding the files.
        split (str): ``'train'``, ``'val'`` or ``'test'``. Defaults to ``'train'``.
        **kwargs: Arguments of :class:`~medtrans.datasets.classification.BaseClsDataset`
            (``pipeline``, ``test_mode``, ...).

    Raises:
        FileNotFoundError: ``data_root`` or a file of the split is missing (an ``.h5.gz``
            without its ``.h5`` gets the command that decompresses it).
        ValueError: An unreadable file, ``x`` or ``y`` of another shape or type, labels other
            than 0/1, or x and y files of different lengths (naming both).
    """

    METAINFO = dict(classes=('normal', 'tumour'))
    MULTI_LABEL = False
    SPLIT_FRACTIONS: Dict[str, float] = {}
    SPLIT_RECORD = 'pcam'
    LAYOUT = _LAYOUT

    def _read_split(self, split: str) -> List[dict]:
        x_path, y_path = pcam_files(self.data_root, split)
        labels = read_pcam_labels(y_path)
        patches = open_pcam_patches(x_path)
        num_patches = len(patches)
        patches.file.close()
        if num_patches != len(labels):
            raise ValueError(f'PatchCamelyon split "{split}": "{x_path}" holds {num_patches} '
                             f'patches but "{y_path}" holds {len(labels)} labels; expected one '
                             'label per patch.')
        return [
            dict(h5_path=x_path, h5_index=i, sample_id=f'{split}/{i:06d}', gt_label=label)
            for i, label in enumerate(labels.tolist())
        ]

    def official_splits(self) -> Mapping:
        """The official splits; a split's files are read when it is looked up.

        Returns:
            Mapping[str, list[dict]]: ``'train'``, ``'val'`` and ``'test'`` -> samples.
        """
        return _OfficialSplits(self._read_split)
