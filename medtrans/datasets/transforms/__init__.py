from .color import ColorJitter
from .dicom import LoadDicom
from .geometric import RandomElasticDeform
from .h5 import LoadPCamPatch
from .loading import LoadBinaryMask, LoadImageStrict

__all__ = ['LoadImageStrict', 'LoadBinaryMask', 'ColorJitter', 'LoadDicom', 'LoadPCamPatch',
           'RandomElasticDeform']
