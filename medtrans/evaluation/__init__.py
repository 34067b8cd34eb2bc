from . import functional
from .metrics import LesionSegMetric

__all__ = ['functional', 'LesionSegMetric']
