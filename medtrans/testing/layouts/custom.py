"""The tiny CSV layout of :class:`~medtrans.datasets.CustomClsDataset`."""
import os.path as osp

from .base import SyntheticLayout
from .classification import write_csv, write_images

__all__ = ['custom_cls_layout']

# (path under images/, label, patient): nested paths, PNG and JPEG, a patient with two images.
_ROWS = (('p1/a.png', 'benign', 'p1'), ('p1/b.jpg', 'malignant', 'p1'),
         ('p2/a.png', 'malignant', 'p2'), ('c.png', 'benign', 'p3'))


def custom_cls_layout(root: str) -> SyntheticLayout:
    """Write ``labels.csv`` (path, label, patient_id) and four 32x32 images under
    ``images/``; read as ``'all'`` with the classes given.

    Args:
        root (str): Folder to write to.

    Returns:
        SyntheticLayout: The images and the label table.
    """
    table = write_csv(osp.join(root, 'labels.csv'), [('path', 'label', 'patient_id'), *_ROWS])
    images = write_images(osp.join(root, 'images'), [path for path, _, _ in _ROWS], seed=2)
    return SyntheticLayout(
        root=root,
        dataset_cfg=dict(data_root=root, ann_file='labels.csv', img_dir='images',
                         classes=('benign', 'malignant'), group_column='patient_id',
                         split='all'),
        pipeline=[dict(type='LoadImageStrict')],
        target_keys=('gt_label', ),
        images=images,
        label_tables=[table])
