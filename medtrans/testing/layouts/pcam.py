"""A tiny PatchCamelyon in the published HDF5 layout, for the fuzz tests and unit tests.

The published files store ``x`` and ``y`` without checksums, where a flipped bit in a label is
a valid label that no reader can tell from the original. The fuzz layout therefore writes its
files with HDF5's own integrity checks (the newest file format, whose metadata carries
checksums, and Fletcher-32 checksums on the data chunks), so that every damage it makes is one a
reader can see, and the test asserts that the reader reports it. :func:`write_pcam_split` can
also write files like the published ones (contiguous, no checksums).
"""
import os
import os.path as osp
from typing import Optional, Tuple

import numpy as np

from .base import SyntheticLayout

__all__ = ['pcam_layout', 'write_pcam_split']


def write_pcam_split(root: str, split: str, labels, seed: int = 0,
                     checksums: bool = False,
                     patches: Optional[np.ndarray] = None) -> Tuple[str, str]:
    """Write one split's ``x`` and ``y`` files under their published names.

    Args:
        root (str): The data folder.
        split (str): The file name part: ``'train'``, ``'valid'`` or ``'test'``.
        labels (Sequence[int]): One label per patch (written as uint8 of shape (N, 1, 1, 1)).
        seed (int): Seed of the random patches. Defaults to 0.
        checksums (bool): Write chunked data with Fletcher-32 checksums in the newest file
            format, instead of contiguous data as published. Defaults to False.
        patches (np.ndarray, optional): uint8 (N, 96, 96, 3) patches to write instead of random
            ones. Defaults to None.

    Returns:
        tuple[str, str]: The x and y paths.
    """
    import h5py

    os.makedirs(root, exist_ok=True)
    labels = np.asarray(labels, np.uint8).reshape(-1, 1, 1, 1)
    if patches is None:
        rng = np.random.RandomState(seed)
        patches = rng.randint(0, 256, (len(labels), 96, 96, 3)).astype(np.uint8)
    paths = []
    for xy, data in (('x', patches), ('y', labels)):
        path = osp.join(root, f'camelyonpatch_level_2_split_{split}_{xy}.h5')
        options = dict(chunks=data.shape, fletcher32=True) if checksums else {}
        with h5py.File(path, 'w', libver='latest' if checksums else 'earliest') as handle:
            handle.create_dataset(xy, data=data, **options)
        paths.append(path)
    return paths[0], paths[1]


def pcam_layout(root: str) -> SyntheticLayout:
    """Write a training split of four patches, with HDF5 checksums (see the module docstring).

    Args:
        root (str): The data folder.

    Returns:
        SyntheticLayout: The two files, read as the ``train`` split.
    """
    x_path, y_path = write_pcam_split(root, 'train', [0, 1, 1, 0], checksums=True)
    return SyntheticLayout(
        root=root,
        dataset_cfg=dict(data_root=root, split='train'),
        pipeline=[dict(type='LoadPCamPatch')],
        target_keys=('gt_label', ),
        h5_files=[x_path, y_path])
