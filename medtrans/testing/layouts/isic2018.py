"""A synthetic lesion-segmentation set in the official ISIC 2018 Task 1 layout.

:func:`make_synthetic_isic2018` writes the demo set (``make demo``);
:func:`isic2018_task1_layout` is the tiny layout of
:class:`~medtrans.datasets.ISIC2018Task1Dataset` for the fuzz tests.

The demo set lets the headline config run anywhere without the real data (which needs a
download and an agreement to its licence): each image is skin-like textured background with one
dark, irregular lesion; the mask marks the lesion. Lesions differ clearly from the skin, so that
a small model trained from random initialisation on a CPU learns them within minutes.
"""
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from .base import SyntheticLayout

__all__ = ['make_synthetic_isic2018', 'is_complete_synthetic_isic2018', 'isic2018_task1_layout',
           'MANIFEST_NAME']

#: File at the root of a generated set that records its parameters and files. Written last, so
#: its presence means the set is complete.
MANIFEST_NAME = 'medtrans_synthetic_manifest.json'
_GENERATOR = 'medtrans.testing.make_synthetic_isic2018/1'

# (input folder, ground-truth folder, RNG stream) per official split.
_SETS = (
    ('ISIC2018_Task1-2_Training_Input', 'ISIC2018_Task1_Training_GroundTruth', 0),
    ('ISIC2018_Task1-2_Validation_Input', 'ISIC2018_Task1_Validation_GroundTruth', 1),
    ('ISIC2018_Task1-2_Test_Input', 'ISIC2018_Task1_Test_GroundTruth', 2),
)
_ATTRIBUTION = ('Synthetic images made by medtrans ({generator}, seed {seed}); not ISIC data.\n'
                'The real ISIC 2018 data are published at '
                'https://challenge.isic-archive.com/data/#2018\n')


def _smooth_noise(rng: np.random.RandomState, size: Tuple[int, int], cell: int,
                  channels: int) -> np.ndarray:
    """Zero-mean, unit-ish noise varying over about ``cell`` pixels."""
    h, w = size
    coarse = rng.standard_normal((max(2, h // cell + 2), max(2, w // cell + 2), channels))
    fine = cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return fine.reshape(h, w, channels)


def _sample(rng: np.random.RandomState, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """One (BGR uint8 image, {0, 255} uint8 mask) pair."""
    h, w = size
    short = min(h, w)
    # Skin: a light, warm tone with freckle-scale and blotch-scale variation.
    red = rng.uniform(200, 240)
    green = red * rng.uniform(0.70, 0.82)
    blue = green * rng.uniform(0.78, 0.92)
    skin = np.array([blue, green, red], np.float32)
    shading = 1 + 0.06 * _smooth_noise(rng, size, max(4, short // 3), 1)
    img = skin * shading + 6 * _smooth_noise(rng, size, max(2, short // 16), 3)

    # Lesion: an ellipse with a wavy border (a few low angular harmonics).
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    radius = rng.uniform(0.2, 0.33) * short
    stretch = rng.uniform(0.75, 1.25)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = (yy - cy) * stretch, (xx - cx) / stretch
    theta = np.arctan2(dy, dx)
    border = np.ones_like(theta)
    for harmonic in range(2, 6):
        border += rng.uniform(0, 0.1) * np.cos(harmonic * theta + rng.uniform(0, 2 * np.pi))
    rel = np.sqrt(dy ** 2 + dx ** 2) / (radius * border)
    mask = rel < 1

    # Brown to dark brown (BGR).
    lesion_red = rng.uniform(70, 130)
    lesion_green = lesion_red * rng.uniform(0.5, 0.75)
    lesion = np.array([lesion_green * rng.uniform(0.6, 1.0), lesion_green, lesion_red],
                      np.float32)
    # Darker towards the centre, blotchy inside, always far darker than the skin.
    core = (1 - 0.35 * np.clip(1 - rel, 0, 1))[..., None]
    lesion_img = lesion * core + 10 * _smooth_noise(rng, size, max(2, short // 12), 3)
    # A soft edge (about a pixel), so the boundary is not a perfect step.
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)[..., None]
    img = img * (1 - alpha) + lesion_img * alpha + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask.astype(np.uint8) * 255


def _params(num_train: int, num_val: int, num_test: int, size: Tuple[int, int],
            seed: int) -> dict:
    return dict(num_train=int(num_train), num_val=int(num_val), num_test=int(num_test),
                size=[int(size[0]), int(size[1])], seed=int(seed))


def _read_manifest(root: str) -> Optional[dict]:
    try:
        with open(osp.join(root, MANIFEST_NAME)) as f:
            manifest = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def is_complete_synthetic_isic2018(root: str,
                                   num_train: int = 200,
                                   num_val: int = 20,
                                   num_test: int = 0,
                                   size: Tuple[int, int] = (128, 128),
                                   seed: int = 0) -> bool:
    """Whether ``root`` holds a complete set made by :func:`make_synthetic_isic2018` with
    these parameters: its manifest matches and every file it lists has the recorded size.

    Args: as for :func:`make_synthetic_isic2018`.

    Returns:
        bool: True if the set is complete and was made with the same parameters.
    """
    manifest = _read_manifest(root)
    if (manifest is None or manifest.get('generator') != _GENERATOR
            or manifest.get('params') != _params(num_train, num_val, num_test, size, seed)):
        return False
    files = manifest.get('files')
    return isinstance(files, dict) and all(
        osp.isfile(osp.join(root, rel)) and osp.getsize(osp.join(root, rel)) == nbytes
        for rel, nbytes in files.items())


def _remove_previous(root: str) -> None:
    """Remove an earlier generated set from ``root``: only the files its manifest lists."""
    if not osp.exists(root):
        return
    if not osp.isdir(root):
        raise FileExistsError(f'"{root}" exists and is not a folder; expected a folder for the '
                              'synthetic ISIC 2018 set.')
    manifest = _read_manifest(root)
    if manifest is None:
        if os.listdir(root):
            raise FileExistsError(
                f'"{root}" is not empty and holds no {MANIFEST_NAME}; expected an empty folder '
                'or one made by this generator. Choose another folder.')
        return
    for rel in list(manifest.get('files', {})) + [MANIFEST_NAME]:
        if osp.isfile(osp.join(root, rel)):
            os.remove(osp.join(root, rel))
    for folders in _SETS:
        for folder in folders[:2]:
            if osp.isdir(osp.join(root, folder)) and not os.listdir(osp.join(root, folder)):
                os.rmdir(osp.join(root, folder))
    if os.listdir(root):
        raise FileExistsError(
            f'"{root}" still holds files not made by this generator after removing the previous '
            f'synthetic set: {sorted(os.listdir(root))[:5]}; expected nothing else there.')


def make_synthetic_isic2018(root: str,
                            num_train: int = 200,
                            num_val: int = 20,
                            num_test: int = 0,
                            size: Tuple[int, int] = (128, 128),
                            seed: int = 0) -> Dict[str, object]:
    """Write a synthetic lesion-segmentation set in the official ISIC 2018 Task 1 layout.

    Images are ``ISIC2018_Task1-2_{Training,Validation,Test}_Input/ISIC_<7 digits>.jpg`` (ids
    numbered on across the sets, as in the real release), masks are
    ``ISIC2018_Task1_*_GroundTruth/<id>_segmentation.png`` with values {0, 255} and the image's
    size. Each input folder also gets an ``ATTRIBUTION.txt``, as the real release has. Sets
    with no images are not created. Sample ``i`` of a set depends only on ``(seed, set, i)``,
    so the output is the same for a seed on every run.

    The set is written into a temporary sibling folder and moved into place at the end, with a
    manifest (:data:`MANIFEST_NAME`), so ``root`` never holds a partial set. If ``root`` holds
    an earlier generated set, the files listed in its manifest are removed first; a non-empty
    ``root`` without a manifest is refused.

    Args:
        root (str): Output folder.
        num_train (int): Images in the training set. Defaults to 200.
        num_val (int): Images in the official validation set. Defaults to 20.
        num_test (int): Images in the official test set. Defaults to 0.
        size (tuple[int, int]): Image height and width. Defaults to (128, 128).
        seed (int): Seed. Defaults to 0.

    Returns:
        dict: The manifest: ``generator``, ``params`` and ``files`` (relative path -> bytes).

    Raises:
        ValueError: Negative counts, no training images, or a size under 32 pixels.
        FileExistsError: ``root`` holds files that this generator did not make.
    """
    params = _params(num_train, num_val, num_test, size, seed)
    if min(num_train, num_val, num_test) < 0 or num_train == 0:
        raise ValueError(f'make_synthetic_isic2018: expected num_train > 0 and num_val, '
                         f'num_test >= 0, got {params}.')
    if min(size) < 32:
        raise ValueError(f'make_synthetic_isic2018: size must be at least 32x32, got {size}.')
    root = osp.abspath(root)
    _remove_previous(root)
    parent = osp.dirname(root)
    os.makedirs(parent, exist_ok=True)
    tmp_root = tempfile.mkdtemp(prefix=osp.basename(root) + '.tmp-', dir=parent)
    try:
        files: Dict[str, int] = {}
        first_id = 0
        for (img_folder, mask_folder, stream), count in zip(_SETS, (num_train, num_val,
                                                                     num_test)):
            if count == 0:
                continue
            for folder in (img_folder, mask_folder):
                os.makedirs(osp.join(tmp_root, folder))
            attribution = osp.join(img_folder, 'ATTRIBUTION.txt')
            with open(osp.join(tmp_root, attribution), 'w') as f:
                f.write(_ATTRIBUTION.format(generator=_GENERATOR, seed=seed))
            files[attribution] = osp.getsize(osp.join(tmp_root, attribution))
            for i in range(count):
                img, mask = _sample(np.random.RandomState([seed, stream, i]), params['size'])
                sample_id = f'ISIC_{first_id + i:07d}'
                for rel, array, opts in (
                    (osp.join(img_folder, sample_id + '.jpg'), img,
                     [cv2.IMWRITE_JPEG_QUALITY, 92]),
                    (osp.join(mask_folder, sample_id + '_segmentation.png'), mask, []),
                ):
                    if not cv2.imwrite(osp.join(tmp_root, rel), array, opts):
                        raise OSError(f'could not write "{osp.join(tmp_root, rel)}"')
                    files[rel] = osp.getsize(osp.join(tmp_root, rel))
            first_id += count
        manifest = dict(generator=_GENERATOR, params=params, files=files)
        with open(osp.join(tmp_root, MANIFEST_NAME), 'w') as f:
            json.dump(manifest, f, indent=1)
        if osp.isdir(root):
            os.rmdir(root)  # empty by now; os.replace cannot move a folder onto a folder
        os.replace(tmp_root, root)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    return manifest


def isic2018_task1_layout(root: str) -> SyntheticLayout:
    """Write three 32x32 training samples in the official layout, for the fuzz tests.

    Args:
        root (str): Folder to write to (see :func:`make_synthetic_isic2018`).

    Returns:
        SyntheticLayout: The images and masks written, read as the ``trainval`` split with the
        strict loading transforms.
    """
    manifest = make_synthetic_isic2018(root, num_train=3, num_val=0, size=(32, 32))
    files = sorted(osp.join(root, rel) for rel in manifest['files'])
    return SyntheticLayout(
        root=root,
        dataset_cfg=dict(data_root=root, split='trainval'),
        pipeline=[dict(type='LoadImageStrict'), dict(type='LoadBinaryMask')],
        target_keys=('gt_seg_map', ),
        images=[path for path in files if path.endswith('.jpg')],
        masks=[path for path in files if path.endswith('_segmentation.png')])
