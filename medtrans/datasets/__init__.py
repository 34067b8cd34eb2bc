from .aptos import APTOS2019Dataset
from .cbis_ddsm import CBISDDSMDataset
from .check import DatasetCheckReport, check_dataset
from .chexpert import CheXpertDataset
from .classification import BaseClsDataset
from .csaw_s import CSAWSDataset
from .custom import CustomClsDataset
from .isic2018 import ISIC2018Task1Dataset
from .isic2019 import ISIC2019Dataset
from .pcam import PCamDataset
from .splits import check_split_file_path, load_or_create_split, split_ids
from .transforms import LoadBinaryMask, LoadImageStrict, RandomElasticDeform

# The synthetic layouts and demo data (``medtrans.datasets.synthetic``) are not imported here:
# only the fuzz tests and tools use them.
__all__ = [
    'ISIC2018Task1Dataset', 'BaseClsDataset', 'APTOS2019Dataset', 'ISIC2019Dataset',
    'CustomClsDataset', 'split_ids', 'load_or_create_split', 'check_split_file_path',
    'LoadImageStrict', 'LoadBinaryMask', 'check_dataset', 'DatasetCheckReport',
    'CheXpertDataset', 'PCamDataset', 'CBISDDSMDataset', 'CSAWSDataset', 'RandomElasticDeform'
]
