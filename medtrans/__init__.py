"""medtrans: medical image representation learning on the OpenMMLab stack."""
from .utils.compat import apply_compat
from .version import __version__

# The stack needs its workarounds before mmseg is first imported, which the registries'
# lazy imports can do at any time; importing medtrans is the earliest reliable point.
apply_compat()

from . import fileio  # noqa: E402,F401  (registers the atomic checkpoint backend)

__all__ = ['__version__']
