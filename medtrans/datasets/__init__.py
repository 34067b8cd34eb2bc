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
from .samplers import (
    ResumableDefaultSampler,
    ResumableInfiniteSampler,
    SampleIndex,
    SeededSamplesMixin,
)
from .splits import (
    GROUP_KEYS,
    SplitRecordMixin,
    check_split_file_path,
    load_or_create_split,
    record_split,
    record_splits,
    split_ids,
)
from .transforms import LoadBinaryMask, LoadImageStrict, RandomElasticDeform

# The synthetic layouts and demo data are test helpers, in ``medtrans.testing``, which nothing
# in medtrans imports: only the tests, tools and benchmarks use them.
__all__ = [
    'ISIC2018Task1Dataset', 'BaseClsDataset', 'APTOS2019Dataset', 'ISIC2019Dataset',
    'CustomClsDataset', 'split_ids', 'load_or_create_split', 'check_split_file_path',
    'record_split', 'record_splits', 'SplitRecordMixin', 'GROUP_KEYS',
    'LoadImageStrict', 'LoadBinaryMask', 'check_dataset', 'DatasetCheckReport',
    'CheXpertDataset', 'PCamDataset', 'CBISDDSMDataset', 'CSAWSDataset', 'RandomElasticDeform',
    'ResumableDefaultSampler', 'ResumableInfiniteSampler', 'SampleIndex', 'SeededSamplesMixin'
]
