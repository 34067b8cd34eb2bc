from .seg_visualizer import BoundedSegLocalVisualizer

__all__ = ['BoundedSegLocalVisualizer']
