"""Example third-party medtrans plugin: a tiny CNN backbone registered in medtrans' MODELS."""
from .tiny_convnet import TinyConvNet

__all__ = ['TinyConvNet']
