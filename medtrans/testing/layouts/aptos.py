"""The tiny APTOS 2019 layout of :class:`~medtrans.datasets.APTOS2019Dataset`."""
import os.path as osp

from .base import SyntheticLayout
from .classification import write_csv, write_images

__all__ = ['aptos2019_layout']

# (id_code, grade): 12-digit hex ids as Kaggle's, every grade present.
_ROWS = (('000c1434d8d7', '2'), ('001639a390f0', '4'), ('0024cdab0c1e', '1'),
         ('002c21358ce6', '0'), ('005b95c28852', '0'), ('0083ee8054ee', '3'))


def aptos2019_layout(root: str) -> SyntheticLayout:
    """Write ``train.csv`` and six 32x32 ``train_images/<id_code>.png``, read as ``'all'``.

    Args:
        root (str): Folder to write to.

    Returns:
        SyntheticLayout: The images and the label table.
    """
    table = write_csv(osp.join(root, 'train.csv'), [('id_code', 'diagnosis'), *_ROWS])
    images = write_images(osp.join(root, 'train_images'), [f'{i}.png' for i, _ in _ROWS], seed=0)
    return SyntheticLayout(
        root=root,
        dataset_cfg=dict(data_root=root, split='all'),
        pipeline=[dict(type='LoadImageStrict')],
        target_keys=('gt_label', ),
        images=images,
        label_tables=[table])
