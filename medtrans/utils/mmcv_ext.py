"""A stand-in for ``mmcv._ext``, the compiled ops that mmcv-lite lacks.

``import mmseg.models`` imports ``mmcv.ops`` (point_sample, focal loss...), which needs
``mmcv._ext``; nothing in medtrans calls those ops. :func:`install_mmcv_ops_stub` puts a module
in ``sys.modules`` whose every op raises ``NotImplementedError`` naming it, and only where the real
``mmcv._ext`` cannot be imported (full mmcv keeps its ops). Importing ``medtrans`` installs it
(the one change an import of medtrans makes outside it), before anything can import mmseg.
"""
import importlib
import importlib.machinery
import sys
import types

__all__ = ['install_mmcv_ops_stub']


class _MissingOps(types.ModuleType):
    """Stand-in for ``mmcv._ext``: every attribute is an op that refuses to run."""

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)

        def _unavailable(*args, **kwargs):
            raise NotImplementedError(
                f'mmcv op "{name}" needs the compiled mmcv._ext, which mmcv-lite lacks. '
                'Install full mmcv (built with ops) to use it.')

        return _unavailable


def install_mmcv_ops_stub() -> None:
    """Put a stand-in for ``mmcv._ext`` in ``sys.modules`` if the real one is missing."""
    if 'mmcv._ext' in sys.modules:
        return
    try:
        importlib.import_module('mmcv._ext')
        return
    except ImportError:
        pass
    stub = _MissingOps('mmcv._ext')
    # The Runner's lazy imports call importlib.util.find_spec, which rejects __spec__ = None.
    stub.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', None)
    sys.modules['mmcv._ext'] = stub
