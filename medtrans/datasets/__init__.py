from .check import DatasetCheckReport, check_dataset
from .fuzz import SyntheticLayout
from .isic2018 import ISIC2018Task1Dataset
from .splits import check_split_file_path, load_or_create_split, split_ids
from .synthetic import is_complete_synthetic_isic2018, make_synthetic_isic2018
from .transforms import LoadBinaryMask, LoadImageStrict

__all__ = [
    'ISIC2018Task1Dataset', 'split_ids', 'load_or_create_split', 'check_split_file_path',
    'make_synthetic_isic2018', 'is_complete_synthetic_isic2018', 'LoadImageStrict',
    'LoadBinaryMask', 'check_dataset', 'DatasetCheckReport', 'SyntheticLayout'
]
