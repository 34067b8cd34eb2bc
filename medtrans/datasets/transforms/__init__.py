from .loading import LoadBinaryMask, LoadImageStrict

__all__ = ['LoadImageStrict', 'LoadBinaryMask']
