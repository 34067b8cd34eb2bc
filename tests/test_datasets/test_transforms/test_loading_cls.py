"""LoadImageStrict for classification: every pixel format to 8-bit BGR, reduced JPEG decoding."""
import cv2
import numpy as np
import pytest
from PIL import Image

from medtrans.datasets import LoadImageStrict

REAL_JPEG = 'isic2018_task1/ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg'  # 1022x767


def _load(path, **kwargs):
    return LoadImageStrict(**kwargs)(dict(img_path=str(path)))


def _pil_png(path, array, mode=None):
    Image.fromarray(array, mode).save(path, 'PNG')
    return path


@pytest.fixture
def grey():
    return np.random.RandomState(0).randint(0, 256, (12, 10)).astype(np.uint8)


def test_grey_formats_become_three_equal_channels(tmp_path, grey):
    alpha = np.random.RandomState(1).randint(0, 256, grey.shape).astype(np.uint8)
    deep = grey.astype(np.uint16) * 257 + np.random.RandomState(2).randint(
        0, 257, grey.shape).astype(np.uint16)
    cases = dict(
        grey8=(_pil_png(tmp_path / 'g.png', grey), grey),
        # 16-bit: round(v / 257) maps 0..65535 onto 0..255.
        grey16=(_pil_png(tmp_path / 'g16.png', deep), np.round(deep / 257).astype(np.uint8)),
        # Grey + alpha: the alpha channel is dropped, not blended.
        grey_alpha=(_pil_png(tmp_path / 'la.png', np.dstack([grey, alpha]), 'LA'), grey),
    )
    for name, (path, expected) in cases.items():
        img = _load(path)['img']
        assert img.dtype == np.uint8 and img.shape == (12, 10, 3), name
        for c in range(3):
            np.testing.assert_array_equal(img[..., c], expected, err_msg=name)


def test_colour_formats_become_bgr(tmp_path, grey):
    rgb = np.random.RandomState(3).randint(0, 256, (12, 10, 3)).astype(np.uint8)
    alpha = np.random.RandomState(4).randint(0, 65536, (12, 10)).astype(np.uint16)
    rgba16 = np.dstack([rgb.astype(np.uint16) * 257, alpha])
    cv2.imwrite(str(tmp_path / 'bgra16.png'), rgba16[..., [2, 1, 0, 3]])
    np.testing.assert_array_equal(_load(tmp_path / 'bgra16.png')['img'], rgb[..., ::-1])
    palette = Image.fromarray(rgb).convert('P')
    palette.save(tmp_path / 'p.png')
    np.testing.assert_array_equal(_load(tmp_path / 'p.png')['img'],
                                  np.asarray(palette.convert('RGB'))[..., ::-1])
    as_grey = _load(tmp_path / 'bgra16.png', color_type='grayscale')['img']
    np.testing.assert_array_equal(as_grey, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


@pytest.mark.parametrize('reduce_to, factor_flag, shape', [
    (256, cv2.IMREAD_REDUCED_COLOR_2, (384, 511)),   # 767 / 4 = 192 would be under 256
    (96, cv2.IMREAD_REDUCED_COLOR_8, (96, 128)),     # ceil(767 / 8) = 96
    (100, cv2.IMREAD_REDUCED_COLOR_4, (192, 256)),
])
def test_reduced_jpeg_decoding_is_opencvs_at_the_largest_factor_allowed(
        fixtures_dir, reduce_to, factor_flag, shape):
    path = fixtures_dir / REAL_JPEG
    out = _load(path, reduce_jpeg_to=reduce_to)
    expected = cv2.imread(str(path), factor_flag | cv2.IMREAD_IGNORE_ORIENTATION)
    assert out['img'].shape == shape + (3, ) and out['img_shape'] == out['ori_shape'] == shape
    np.testing.assert_array_equal(out['img'], expected)
    grey = _load(path, reduce_jpeg_to=reduce_to, color_type='grayscale')['img']
    np.testing.assert_array_equal(
        grey, cv2.imread(str(path), (factor_flag - 1) | cv2.IMREAD_IGNORE_ORIENTATION))


def test_reduced_decoding_falls_back_to_full_size(fixtures_dir, tmp_path):
    path = fixtures_dir / REAL_JPEG
    np.testing.assert_array_equal(_load(path, reduce_jpeg_to=768)['img'], _load(path)['img'])
    png = tmp_path / 'x.png'
    cv2.imwrite(str(png), cv2.imread(str(path)))
    assert _load(png, reduce_jpeg_to=8)['img'].shape == (767, 1022, 3)
    cut = tmp_path / 'cut.jpg'
    cut.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(ValueError, match='"[^"]*cut.jpg" is a truncated JPEG'):
        _load(cut, reduce_jpeg_to=96)
    for bad in (0, -5, 2.5, '256', True):
        with pytest.raises(ValueError, match='reduce_jpeg_to must be a positive int'):
            LoadImageStrict(reduce_jpeg_to=bad)


def test_reduced_decoding_ignores_exif_orientation_like_the_full_one(tmp_path):
    rgb = np.random.RandomState(5).randint(0, 256, (64, 48, 3)).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to display"
    Image.fromarray(rgb).save(tmp_path / 'rot.jpg', 'JPEG', exif=exif.tobytes(), quality=95)
    assert _load(tmp_path / 'rot.jpg')['img'].shape == (64, 48, 3)
    assert _load(tmp_path / 'rot.jpg', reduce_jpeg_to=24)['img'].shape == (32, 24, 3)
    # What OpenCV's reduced flags alone would give.
    assert cv2.imread(str(tmp_path / 'rot.jpg'), cv2.IMREAD_REDUCED_COLOR_2).shape == (24, 32, 3)
