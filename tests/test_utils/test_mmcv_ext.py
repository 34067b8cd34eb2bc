"""The stand-in for mmcv._ext that mmseg's import needs with mmcv-lite."""
import pytest

from medtrans.utils import install_mmcv_ops_stub


def test_mmseg_models_import_and_ops_refuse_to_run():
    install_mmcv_ops_stub()
    import mmcv._ext as ext
    import mmseg.models  # noqa: F401  needs the stand-in for mmcv._ext
    from mmcv.ops import point_sample  # noqa: F401
    with pytest.raises(NotImplementedError, match='nms'):
        ext.nms()
