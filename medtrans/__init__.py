"""medtrans: medical image representation learning on the OpenMMLab stack.

Importing medtrans changes nothing outside it but one thing: where ``mmcv._ext`` (mmcv's
compiled ops) cannot be imported, as with mmcv-lite, it puts a stand-in in ``sys.modules`` so
that mmseg imports at all (:mod:`medtrans.utils.mmcv_ext`); with full mmcv nothing changes. It
comes first because mmseg may be imported by medtrans' modules, by a plugin or by a registry's
lazy import. What else the stack needs globally (MMEngine's checkpoint loading made
weights-only, the atomic file backend) is applied by
:func:`medtrans.setup_env.register_all_modules`.
"""
from .utils.mmcv_ext import install_mmcv_ops_stub
from .version import __version__

install_mmcv_ops_stub()

__all__ = ['__version__']
