"""Example third-party medtrans plugin: a tiny CNN backbone and a lesion dataset, registered in
medtrans' MODELS and DATASETS."""
from .lesion_folders import LesionFolderDataset
from .tiny_convnet import TinyConvNet

__all__ = ['TinyConvNet', 'LesionFolderDataset']
