"""A tiny CheXpert in the published layout, for the fuzz tests.

:func:`chexpert_layout` is the layout of :class:`~medtrans.datasets.CheXpertDataset`: label
tables with the published 19 columns and label spellings (``1.0``, ``0.0``, ``-1.0``, blank),
frontal and lateral views, and 8-bit grey JPEGs as in ``CheXpert-v1.0-small``.
"""
import os.path as osp

import numpy as np

from .base import SyntheticLayout
from .classification import write_csv, write_images

__all__ = ['chexpert_layout', 'CHEXPERT_HEADER']

#: The header of the published ``train.csv`` and ``valid.csv``.
CHEXPERT_HEADER = (
    'Path', 'Sex', 'Age', 'Frontal/Lateral', 'AP/PA', 'No Finding',
    'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity', 'Lung Lesion', 'Edema',
    'Consolidation', 'Pneumonia', 'Atelectasis', 'Pneumothorax', 'Pleural Effusion',
    'Pleural Other', 'Fracture', 'Support Devices')
# (folder, patient, study, views) of the layout's studies.
_STUDIES = (('train', 1, 1, ('Frontal', 'Lateral')), ('train', 1, 2, ('Frontal', )),
            ('train', 2, 1, ('Frontal', )), ('train', 3, 1, ('Frontal', 'Lateral')),
            ('valid', 64541, 1, ('Frontal', )))


def chexpert_layout(root: str) -> SyntheticLayout:
    """Write six training radiographs of three patients and one validation radiograph.

    Args:
        root (str): The data folder (``CheXpert-v1.0-small`` in a real download).

    Returns:
        SyntheticLayout: ``train.csv`` and its images, read as the ``all`` split.
    """
    rng = np.random.RandomState(0)
    spellings = ('1.0', '0.0', '-1.0', '')
    rows = {'train': [], 'valid': []}
    for folder, patient, study, views in _STUDIES:
        for number, view in enumerate(views, start=1):
            rel = f'{folder}/patient{patient:05d}/study{study}/view{number}_{view.lower()}.jpg'
            # valid.csv, labelled by radiologists, has no uncertain or blank labels.
            labels = rng.choice(spellings[:2] if folder == 'valid' else spellings, 14)
            rows[folder].append((f'CheXpert-v1.0-small/{rel}', 'Female', '60', view,
                                 'AP' if view == 'Frontal' else '', *labels))
    images = {folder: write_images(root, [row[0].split('/', 1)[1] for row in folder_rows],
                                   seed=i, grey=True)
              for i, (folder, folder_rows) in enumerate(rows.items())}
    tables = {folder: write_csv(osp.join(root, f'{folder}.csv'), [CHEXPERT_HEADER, *folder_rows])
              for folder, folder_rows in rows.items()}
    return SyntheticLayout(
        root=root,
        dataset_cfg=dict(data_root=root, split='all'),
        pipeline=[dict(type='LoadImageStrict')],
        target_keys=('gt_score', ),
        images=images['train'],
        label_tables=[tables['train']])
