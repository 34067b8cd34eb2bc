from .base import EmbeddingBackbone, TimmBackbone
from .deit import DeiT
from .inception_v3 import TimmInceptionV3
from .resnet import TimmResNet
from .swin import TimmSwinTransformer

__all__ = [
    'EmbeddingBackbone', 'TimmBackbone', 'DeiT', 'TimmResNet', 'TimmInceptionV3',
    'TimmSwinTransformer'
]
