from .entry_points import entry_points_of
from .mmcv_ext import install_mmcv_ops_stub

__all__ = ['install_mmcv_ops_stub', 'entry_points_of']
