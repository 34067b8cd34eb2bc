"""The plugin dataset's synthetic layout, so that it joins medtrans' fuzz tests.

A test helper, not product code: the package's modules never import it; ``setup.cfg`` declares it
in the ``medtrans.synthetic_layouts`` entry-point group, where ``medtrans.testing`` finds it.
"""
import os
import os.path as osp

import cv2
import numpy as np

from medtrans.testing import SyntheticLayout


def lesion_folders_layout(root: str) -> SyntheticLayout:
    """Three 32x32 training images with their 0/255 masks in ``root/train/{images,masks}``."""
    rng = np.random.default_rng(0)
    images, masks = [], []
    for folder in ('images', 'masks'):
        os.makedirs(osp.join(root, 'train', folder), exist_ok=True)
    for index in range(3):
        mask = np.zeros((32, 32), np.uint8)
        mask[8:24, 4 + index:20 + index] = 255
        images.append(osp.join(root, 'train', 'images', f'case{index}.png'))
        masks.append(osp.join(root, 'train', 'masks', f'case{index}.png'))
        cv2.imwrite(images[-1], rng.integers(0, 256, (32, 32, 3), np.uint8))
        cv2.imwrite(masks[-1], mask)
    return SyntheticLayout(
        root=root,
        dataset_cfg=dict(data_root=root, split='train'),
        pipeline=[dict(type='LoadImageStrict'), dict(type='LoadBinaryMask')],
        target_keys=('gt_seg_map', ),
        images=images,
        masks=masks)
