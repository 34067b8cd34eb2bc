"""medtrans: medical image representation learning on the OpenMMLab stack.

Importing medtrans changes nothing outside it. What the stack needs globally (MMEngine's
checkpoint loading made weights-only, the atomic file backend, the ``mmcv._ext`` stand-in) is
applied by :func:`medtrans.setup_env.register_all_modules`.
"""
from .version import __version__

__all__ = ['__version__']
