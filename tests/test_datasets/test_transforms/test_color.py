"""ColorJitter against torchvision.transforms.functional on the same image (BGR <-> RGB).

Tolerances: on uint8 tensors torchvision truncates towards zero after every blend (and its
luminance is truncated to uint8 before blending), while ColorJitter computes in float32 and
rounds once, so each step differs by at most one level, two where a saturation factor far from 1
amplifies the truncated luminance. For hue, both sides convert to HSV in floating point
(torchvision with its own tensor code, ours with OpenCV's float32 ``cvtColor``, H in degrees);
they differ by float rounding plus torchvision's final ``x * 255.999`` truncation, so the
difference is at most one level and its mean a small fraction of a level.
"""
import cv2
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F
from mmcv.transforms import RandomApply

from medtrans.datasets.transforms import ColorJitter
from medtrans.registry import TRANSFORMS
from medtrans.setup_env import register_all_modules

ISIC_JPEG = 'isic2018_task1/ISIC2018_Task1-2_Training_Input/ISIC_0000001.jpg'


def _random_bgr() -> np.ndarray:
    img = np.random.RandomState(0).randint(0, 256, (40, 48, 3)).astype(np.uint8)
    # Extremes where HSV is degenerate or saturated: black, white, grey, primaries.
    img[0, :6] = [(0, 0, 0), (255, 255, 255), (128, 128, 128), (255, 0, 0), (0, 255, 0),
                  (0, 0, 255)]
    return img


@pytest.fixture(params=['random', 'isic'])
def image(request) -> np.ndarray:
    """A non-square BGR uint8 image: random colours, or a crop of a real dermoscopy JPEG."""
    if request.param == 'random':
        return _random_bgr()
    path = request.getfixturevalue('fixtures_dir') / ISIC_JPEG
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[300:364, 400:456]


def _torchvision(fn, img: np.ndarray, factor: float) -> np.ndarray:
    """Apply a torchvision functional op to a BGR HxWx3 array as the RGB CxHxW tensor."""
    rgb = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1)
    return fn(rgb, factor).permute(1, 2, 0).numpy()[..., ::-1]


def _jitter(img: np.ndarray, **ranges) -> np.ndarray:
    out = ColorJitter(**ranges)(dict(img=img.copy()))['img']
    assert out.dtype == np.uint8 and out.shape == img.shape
    return out


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def test_built_from_config_under_medtrans_scope_and_random_apply():
    register_all_modules()
    cfg = dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.1, hue=0.1)
    jitter = TRANSFORMS.build(cfg)
    assert isinstance(jitter, ColorJitter)
    assert jitter.brightness == jitter.contrast == (0.8, 1.2)
    assert jitter.saturation == (0.9, 1.1)
    assert jitter.hue == (-0.1, 0.1)
    wrapped = TRANSFORMS.build(dict(type='RandomApply', prob=0.8, transforms=[cfg]))
    assert isinstance(wrapped, RandomApply) and isinstance(wrapped.transforms.transforms[0],
                                                           ColorJitter)
    img = _random_bgr()
    np.random.seed(0)
    changed = sum(not np.array_equal(wrapped(dict(img=img.copy()))['img'], img)
                  for _ in range(100))
    assert 65 <= changed <= 95


@pytest.mark.parametrize('name, fn, factors', [
    ('brightness', F.adjust_brightness, [0., 0.5, 1.3, 2.0]),
    ('contrast', F.adjust_contrast, [0., 0.4, 1.6, 3.0]),
    ('saturation', F.adjust_saturation, [0., 0.6, 1.8, 3.0]),
])
def test_linear_steps_match_torchvision(image, name, fn, factors):
    for factor in factors:
        ours = _jitter(image, **{name: (factor, factor)})
        assert _max_diff(ours, _torchvision(fn, image, factor)) <= 2, (name, factor)


@pytest.mark.parametrize('factor', [-0.5, -0.3, -0.1, -0.01, 0.05, 0.25, 0.5])
def test_hue_matches_torchvision(image, factor):
    ours = _jitter(image, hue=(factor, factor))
    diff = np.abs(ours.astype(np.int16) - _torchvision(F.adjust_hue, image, factor))
    assert diff.max() <= 1 and diff.mean() < 0.2, factor


def test_negative_hue_shift_wraps_around():
    # A negative shift made MMCV's adjust_hue raise OverflowError on uint8 under numpy 2.
    red, green = np.array([[[0, 0, 255]]], np.uint8), np.array([[[0, 255, 0]]], np.uint8)
    # Red is hue 0 degrees: -36 degrees wraps to 324 (B = 255 * 36 / 60 = 153).
    np.testing.assert_array_equal(_jitter(red, hue=(-0.1, -0.1)), [[[153, 0, 255]]])
    np.testing.assert_array_equal(_jitter(red, hue=(0.1, 0.1)), [[[0, 153, 255]]])
    # Green is 120 degrees: -0.5 and +0.5 turns both land on 300.
    magenta = [[[255, 0, 255]]]
    np.testing.assert_array_equal(_jitter(green, hue=(-0.5, -0.5)), magenta)
    np.testing.assert_array_equal(_jitter(green, hue=(0.5, 0.5)), magenta)

    img = _random_bgr()
    shifted = _jitter(img, hue=(-0.1, -0.1))
    assert _max_diff(shifted, img) > 50
    assert _max_diff(shifted, _torchvision(F.adjust_hue, img, -0.1)) <= 1


def test_identity_factors_leave_the_image_unchanged(image):
    for unchanged in (ColorJitter(), ColorJitter(brightness=(1, 1), contrast=(1, 1),
                                                 saturation=(1, 1), hue=(0, 0))):
        results = dict(img=image)
        assert unchanged(results)['img'] is image
    # Nearly-identity factors go through every float32 step and must round back exactly.
    tiny = 1e-9
    np.random.seed(0)
    np.testing.assert_array_equal(
        _jitter(image, brightness=(1, 1 + tiny), contrast=(1, 1 + tiny),
                saturation=(1, 1 + tiny), hue=(0, tiny)), image)


def test_factors_are_drawn_uniformly_from_the_range():
    # On a flat grey image only brightness shows: out = round(100 * b).
    grey = np.full((4, 4, 3), 100, np.uint8)
    jitter = ColorJitter(brightness=(0.5, 1.5))
    np.random.seed(0)
    factors = np.array([jitter(dict(img=grey.copy()))['img'][0, 0, 0] / 100 for _ in range(400)])
    assert factors.min() < 0.52 and factors.max() > 1.48
    assert abs(factors.mean() - 1.) < 0.05
    assert 0.4 < np.mean(factors < 1.) < 0.6


def test_deterministic_under_numpy_seed():
    img = _random_bgr()
    jitter = ColorJitter(brightness=0.2, contrast=0.2, saturation=0.1, hue=0.1)

    def run(seed):
        np.random.seed(seed)
        return [jitter(dict(img=img.copy()))['img'] for _ in range(4)]

    first, again, other = run(0), run(0), run(1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other))
    assert not np.array_equal(first[0], first[1])


def test_order_of_steps_is_random():
    # With fixed factors, brightness-then-contrast and contrast-then-brightness differ because
    # brightness 1.8 saturates bright pixels before contrast pulls them towards the mean.
    img = _random_bgr()
    b_then_c = _torchvision(F.adjust_contrast, _torchvision(F.adjust_brightness, img, 1.8), 0.3)
    c_then_b = _torchvision(F.adjust_brightness, _torchvision(F.adjust_contrast, img, 0.3), 1.8)
    assert _max_diff(b_then_c, c_then_b) > 30

    jitter = ColorJitter(brightness=(1.8, 1.8), contrast=(0.3, 0.3))
    np.random.seed(0)
    seen = []
    for _ in range(40):
        out = jitter(dict(img=img.copy()))['img']
        # torchvision truncates after each step; brightness 1.8 amplifies that to <= 3 levels.
        matches = [_max_diff(out, ref) <= 3 for ref in (b_then_c, c_then_b)]
        assert sum(matches) == 1
        seen.append(matches.index(True))
    assert 10 <= sum(seen) <= 30


def test_only_the_image_changes():
    img = _random_bgr()
    mask = (np.arange(40 * 48).reshape(40, 48) % 2).astype(np.uint8)
    results = dict(img=img.copy(), gt_seg_map=mask, seg_fields=['gt_seg_map'],
                   img_path='a.jpg', img_shape=(40, 48), ori_shape=(40, 48))
    original = img.copy()
    out = ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.3)(results)
    assert out['gt_seg_map'] is mask
    np.testing.assert_array_equal(mask, np.arange(40 * 48).reshape(40, 48) % 2)
    assert out['seg_fields'] == ['gt_seg_map'] and out['img_path'] == 'a.jpg'
    assert out['img_shape'] == out['ori_shape'] == (40, 48)
    assert not np.array_equal(out['img'], original)
    np.testing.assert_array_equal(img, original)


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(brightness=-0.1), ValueError, 'brightness=-0.1; a single number must be non-negative'),
    (dict(contrast=(1.2, 0.8)), ValueError, r'contrast gives the range \[1.2, 0.8\]'),
    (dict(saturation=(-0.5, 1.0)), ValueError, 'saturation gives the range'),
    (dict(hue=0.6), ValueError, r'hue gives the range \[-0.6, 0.6\]; expected -0.5 <= min'),
    (dict(hue=(-0.7, 0.1)), ValueError, 'hue gives the range'),
    (dict(hue=-0.1), ValueError, 'hue=-0.1; a single number must be non-negative'),
    (dict(hue=float('nan')), ValueError, 'hue gives the range'),
    (dict(brightness='0.2'), TypeError, "brightness='0.2'; expected a non-negative number"),
    (dict(contrast=(0.5, 1.0, 1.5)), TypeError, r'contrast=\(0.5, 1.0, 1.5\)'),
    (dict(saturation=True), TypeError, 'saturation=True'),
])
def test_invalid_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        ColorJitter(**kwargs)


def test_ranges_follow_torchvision():
    jitter = ColorJitter(brightness=1.5, contrast=[0.5, 2], saturation=0, hue=(-0.2, 0.0))
    assert jitter.brightness == (0., 2.5)
    assert jitter.contrast == (0.5, 2.)
    assert jitter.saturation is None
    assert jitter.hue == (-0.2, 0.)


@pytest.mark.parametrize('img', [
    np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8)
])
def test_non_bgr_uint8_images_are_refused(img):
    with pytest.raises(ValueError, match=r"results\['img'\] is a .*expected a uint8 HxWx3 BGR"):
        ColorJitter(brightness=0.2)(dict(img=img, img_path='x.png'))
