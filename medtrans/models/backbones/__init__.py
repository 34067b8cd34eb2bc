from .deit import DeiT

__all__ = ['DeiT']
