"""A synthetic CSAW-S tree in the published layout, for the fuzz and config tests.

Each screening is a grey breast-like shape on black with one bright tumour; its ``cancer``
annotation marks the tumour, a ``mammary_gland`` annotation (not read by the dataset) the
breast. One screening per patient is stored as RGB with its ``_8bit.png`` grey twin, as some of
the published ones are.
"""
import os
import os.path as osp
from typing import Dict, List

import cv2
import numpy as np

from .base import SyntheticLayout

__all__ = ['write_synthetic_csaw_s', 'csaw_s_layout']


def _screening(rng: np.random.RandomState, size: int):
    """(grey image, tumour mask {0, 255}, breast mask {0, 255}) of one screening."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    breast = (xx / 0.8) ** 2 + ((yy - 0.5) / 0.45) ** 2 < 1
    cy, cx, radius = rng.uniform(0.35, 0.65), rng.uniform(0.2, 0.5), rng.uniform(0.08, 0.15)
    tumour = ((yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2) & breast
    img = np.where(breast, rng.uniform(90, 130), 0) + np.where(tumour, 90, 0)
    img = img + breast * rng.normal(0, 6, img.shape)
    return (np.clip(img, 0, 255).astype(np.uint8), tumour.astype(np.uint8) * 255,
            breast.astype(np.uint8) * 255)


def _write(path: str, array: np.ndarray) -> str:
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, array):
        raise OSError(f'could not write "{path}"')
    return path


def write_synthetic_csaw_s(root: str, train_patients: int = 4, test_patients: int = 1,
                           size: int = 32, seed: int = 0) -> Dict[str, List[str]]:
    """Write a CSAW-S tree: patients ``000``, ``001``, ... with two screenings each.

    Training patients (``anonymized_dataset``) carry annotator 1's annotations beside their
    screenings; test patients (``test_data``) get one annotation folder per annotator, each
    annotator's tumour drawn a little differently (annotator ``k`` dilates it by ``k - 1``
    pixels).

    Args:
        root (str): The ``CsawS`` folder to write.
        train_patients (int): Training patients. Defaults to 4.
        test_patients (int): Test patients, numbered after the training ones. Defaults to 1.
        size (int): Image side. Defaults to 32.
        seed (int): Seed. Defaults to 0.

    Returns:
        dict[str, list[str]]: The files written, by kind: ``train_images`` and
        ``train_masks`` (the screenings the ``trainval`` split reads and their ``cancer``
        annotations), ``test_images``, ``test_masks_<k>`` per annotator, and ``other`` (twins
        and annotations of other classes, which the dataset does not read).
    """
    rng = np.random.RandomState(seed)
    files: Dict[str, List[str]] = dict(train_images=[], train_masks=[], test_images=[],
                                       other=[])
    for index in range(train_patients + test_patients):
        patient = f'{index:03d}'
        test = index >= train_patients
        img_dir = osp.join(root, 'test_data' if test else '', 'anonymized_dataset', patient)
        for n in range(2):
            stem = f'{patient}_{n}'
            img, tumour, breast = _screening(rng, size)
            kind = 'test' if test else 'train'
            if n == 1:  # stored as RGB, with its grey twin
                files[f'{kind}_images'].append(
                    _write(osp.join(img_dir, stem + '.png'), cv2.merge([img] * 3)))
                files['other'].append(_write(osp.join(img_dir, stem + '_8bit.png'), img))
            else:
                files[f'{kind}_images'].append(_write(osp.join(img_dir, stem + '.png'), img))
            if not test:
                files['train_masks'].append(_write(osp.join(img_dir, stem + '_cancer.png'),
                                                   tumour))
                files['other'].append(_write(osp.join(img_dir, stem + '_mammary_gland.png'),
                                             breast))
                continue
            for annotator in (1, 2, 3):
                drawn = tumour if annotator == 1 else cv2.dilate(
                    tumour, np.ones((3, 3), np.uint8), iterations=annotator - 1)
                ann_dir = osp.join(root, 'test_data', f'annotator_{annotator}', patient)
                files.setdefault(f'test_masks_{annotator}', []).append(
                    _write(osp.join(ann_dir, stem + '_cancer.png'), drawn))
    return files


def csaw_s_layout(root: str) -> SyntheticLayout:
    """Write a tiny CSAW-S tree for the fuzz tests: 3 training patients, 6 screenings.

    Args:
        root (str): The ``CsawS`` folder to write.

    Returns:
        SyntheticLayout: The training screenings and their ``cancer`` annotations, read as the
        ``trainval`` split with the strict loading transforms.
    """
    files = write_synthetic_csaw_s(root, train_patients=3, test_patients=0)
    return SyntheticLayout(
        root=root,
        dataset_cfg=dict(data_root=root, split='trainval'),
        pipeline=[dict(type='LoadImageStrict'), dict(type='LoadBinaryMask')],
        target_keys=('gt_seg_map', ),
        images=files['train_images'],
        masks=files['train_masks'])
