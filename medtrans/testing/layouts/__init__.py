"""The synthetic layouts of medtrans' own datasets: one module per dataset family.

:data:`MEDTRANS_LAYOUTS` maps each dataset class name to its layout function; a new medtrans
dataset adds its entry here (a plugin declares an entry point instead, see
:mod:`medtrans.testing`).
"""
from typing import Callable, Dict

from .aptos import aptos2019_layout
from .base import FILE_KINDS, SyntheticLayout
from .cbis_ddsm import cbis_ddsm_layout
from .chexpert import chexpert_layout
from .classification import write_csv, write_images
from .csaw_s import csaw_s_layout, write_synthetic_csaw_s
from .custom import custom_cls_layout
from .isic2018 import (
    MANIFEST_NAME,
    is_complete_synthetic_isic2018,
    isic2018_task1_layout,
    make_synthetic_isic2018,
)
from .isic2019 import isic2019_layout
from .pcam import pcam_layout

#: Dataset class name -> the function that writes its layout under a folder.
MEDTRANS_LAYOUTS: Dict[str, Callable[[str], SyntheticLayout]] = {
    'APTOS2019Dataset': aptos2019_layout,
    'CBISDDSMDataset': cbis_ddsm_layout,
    'CheXpertDataset': chexpert_layout,
    'CSAWSDataset': csaw_s_layout,
    'CustomClsDataset': custom_cls_layout,
    'ISIC2018Task1Dataset': isic2018_task1_layout,
    'ISIC2019Dataset': isic2019_layout,
    'PCamDataset': pcam_layout,
}

__all__ = [
    'MEDTRANS_LAYOUTS', 'SyntheticLayout', 'FILE_KINDS', 'make_synthetic_isic2018',
    'is_complete_synthetic_isic2018', 'isic2018_task1_layout', 'MANIFEST_NAME',
    'aptos2019_layout', 'isic2019_layout', 'custom_cls_layout', 'chexpert_layout',
    'cbis_ddsm_layout', 'pcam_layout', 'csaw_s_layout', 'write_synthetic_csaw_s',
    'write_images', 'write_csv'
]
