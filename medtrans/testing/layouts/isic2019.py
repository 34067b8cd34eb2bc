"""The tiny ISIC 2019 layout of :class:`~medtrans.datasets.ISIC2019Dataset`."""
import os.path as osp

from .base import SyntheticLayout
from .classification import write_csv, write_images

__all__ = ['isic2019_layout']

_CLASSES = ('MEL', 'NV', 'BCC', 'AK', 'BKL', 'DF', 'VASC', 'SCC', 'UNK')
# (image, diagnosis, lesion_id): a downsampled id, two images of one lesion, a blank lesion.
_ROWS = (('ISIC_0000000', 'NV', 'HAM_0000118'), ('ISIC_0000017_downsampled', 'NV', ''),
         ('ISIC_0024306', 'MEL', 'HAM_0000118'), ('ISIC_0024307', 'BCC', 'HAM_0002730'),
         ('ISIC_0053460', 'SCC', 'BCN_0003925'))


def isic2019_layout(root: str) -> SyntheticLayout:
    """Write the ground truth (CRLF, 0/1 cells, as published), the metadata and five 32x32
    JPEGs; read as ``'all'``, grouped by lesion.

    Args:
        root (str): Folder to write to.

    Returns:
        SyntheticLayout: The images and both tables.
    """
    truth = write_csv(
        osp.join(root, 'ISIC_2019_Training_GroundTruth.csv'),
        [('image', ) + _CLASSES] + [(image, *('1' if c == label else '0' for c in _CLASSES))
                                    for image, label, _ in _ROWS],
        line_ending='\r\n')
    metadata = write_csv(
        osp.join(root, 'ISIC_2019_Training_Metadata.csv'),
        [('image', 'age_approx', 'anatom_site_general', 'lesion_id', 'sex')] +
        [(image, '55.0', 'anterior torso', lesion, 'female') for image, _, lesion in _ROWS])
    images = write_images(osp.join(root, 'ISIC_2019_Training_Input'),
                          [f'{image}.jpg' for image, _, _ in _ROWS], seed=1)
    return SyntheticLayout(
        root=root,
        dataset_cfg=dict(data_root=root, split='all', lesion_groups=True),
        pipeline=[dict(type='LoadImageStrict')],
        target_keys=('gt_label', ),
        images=images,
        label_tables=[truth, metadata])
