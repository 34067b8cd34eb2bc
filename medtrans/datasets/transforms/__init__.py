from .color import ColorJitter
from .loading import LoadBinaryMask, LoadImageStrict

__all__ = ['LoadImageStrict', 'LoadBinaryMask', 'ColorJitter']
