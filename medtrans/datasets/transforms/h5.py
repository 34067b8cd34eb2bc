"""Loading image patches from HDF5 files lazily, one row at a time (PatchCamelyon).

The PatchCamelyon image files hold 262,144 patches (7 GB) each: a sample reads its own row,
never the whole array. HDF5 file handles must not cross a ``fork`` (DataLoader workers) nor be
pickled (``spawn`` workers), so each process opens the files it reads on first use and keeps
them open; the dataset itself holds no handle.
"""
import os
import os.path as osp
from typing import Dict, Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from medtrans.registry import TRANSFORMS

__all__ = ['LoadPCamPatch', 'PCAM_PATCH_SHAPE']

#: Height, width and channels of a PatchCamelyon patch (RGB, uint8).
PCAM_PATCH_SHAPE = (96, 96, 3)
_EXPECTED = (f'expected an HDF5 file whose dataset "x" holds uint8 RGB patches of shape '
             f'(N, {", ".join(map(str, PCAM_PATCH_SHAPE))})')


@TRANSFORMS.register_module()
class LoadPCamPatch(BaseTransform):
    """Load one PatchCamelyon patch from its HDF5 file.

    Each process (the main one, or a DataLoader worker) opens an ``x`` file on the first patch it
    reads from it and keeps it open; a forked worker does not reuse its parent's handles, and
    pickling the transform (``spawn`` workers) leaves them behind. The patch is returned in
    **BGR** order, like the images of ``LoadImageStrict``, so that one data preprocessor
    (``bgr_to_rgb=True``) serves every dataset.

    Required Keys:

    - h5_path (the ``..._x.h5`` file)
    - h5_index (the patch's row in it)

    Added Keys:

    - img (np.uint8, or np.float32 with ``to_float32``; 96x96x3)
    - img_shape
    - ori_shape

    Args:
        to_float32 (bool): Return a float32 image instead of uint8. Defaults to False.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: A file that HDF5 cannot read, without a uint8 ``x`` of patches, a row out of
            range or data that fails to read (e.g. a checksum error), naming the file.
    """

    def __init__(self, to_float32: bool = False) -> None:
        self.to_float32 = to_float32
        self._pid = os.getpid()
        self._files: Dict[str, object] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state['_files'] = {}
        return state

    def _patches(self, path: str):
        """The ``x`` dataset of ``path``, opened once per process."""
        if self._pid != os.getpid():
            # A forked copy: the parent's handles are not ours to use.
            self._pid, self._files = os.getpid(), {}
        patches = self._files.get(path)
        if patches is None:
            patches = open_pcam_patches(path)
            self._files[path] = patches
        return patches

    def transform(self, results: dict) -> dict:
        """Read row ``results['h5_index']`` of ``results['h5_path']`` into ``results['img']``.

        Args:
            results (dict): Must hold ``h5_path`` and ``h5_index``.

        Returns:
            dict: ``results`` with ``img``, ``img_shape`` and ``ori_shape``.
        """
        path, index = results['h5_path'], int(results['h5_index'])
        patches = self._patches(path)
        if not 0 <= index < len(patches):
            raise ValueError(f'"{path}" holds {len(patches)} patches; row {index} asked for.')
        try:
            patch = patches[index]
        except Exception as err:  # h5py raises OSError, RuntimeError, ... for damaged data
            raise ValueError(f'"{path}": patch {index} could not be read ({type(err).__name__}: '
                             f'{err}); {_EXPECTED}.') from err
        img = np.ascontiguousarray(patch[:, :, ::-1])
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(to_float32={self.to_float32})'


def open_pcam_patches(path: str):
    """Open the ``x`` dataset of a PatchCamelyon image file for reading, checking its layout.

    Only metadata is read. The caller owns the returned dataset's file (``.file.close()``).

    Args:
        path (str): A ``camelyonpatch_level_2_split_*_x.h5`` file.

    Returns:
        h5py.Dataset: ``x``, uint8 of shape (N, 96, 96, 3).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: Not a readable HDF5 file, or ``x`` missing or of another type or shape.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'"{path}" not found; {_EXPECTED}.')
    import h5py  # deferred: only PatchCamelyon needs it

    try:
        handle = h5py.File(path, 'r')
    except Exception as err:  # h5py raises OSError and others for a damaged file
        raise ValueError(f'"{path}" could not be opened as HDF5 ({type(err).__name__}: {err}); '
                         f'{_EXPECTED}.') from err
    try:
        patches = handle['x']
        found: Tuple = (patches.dtype, patches.shape)
        ok = patches.dtype == np.uint8 and patches.shape[1:] == PCAM_PATCH_SHAPE
    except Exception as err:  # a missing key, a damaged object header, ...
        handle.close()
        raise ValueError(f'"{path}" has no readable dataset "x" ({type(err).__name__}: {err}); '
                         f'{_EXPECTED}.') from err
    if not ok:
        handle.close()
        raise ValueError(f'"{path}": dataset "x" is {found[0]} of shape {found[1]}; '
                         f'{_EXPECTED}.')
    return patches
