from .lesion_seg_metric import LesionSegMetric

__all__ = ['LesionSegMetric']
