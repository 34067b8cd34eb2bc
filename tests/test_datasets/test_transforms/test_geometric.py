"""RandomElasticDeform: one displacement field for the image and its masks."""
import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as F

from medtrans.datasets.transforms import RandomElasticDeform


def _results(size=64):
    """A mask with a few shapes, and an image whose every channel is 200 x the mask + 20."""
    yy, xx = np.mgrid[0:size, 0:size]
    mask = (((yy - 20) ** 2 + (xx - 24) ** 2 < 120) | ((yy > 40) & (xx > 36) & (xx < 56)))
    mask = mask.astype(np.uint8)
    img = np.repeat((mask * 200 + 20)[..., None], 3, axis=2).astype(np.uint8)
    return dict(img=img, gt_seg_map=mask.copy(), seg_fields=['gt_seg_map'])


@pytest.mark.parametrize('seed', range(5))
def test_the_mask_stays_aligned_with_the_image(seed):
    np.random.seed(seed)
    deform = RandomElasticDeform(prob=1.0, alpha=200.0, sigma=4.0, interpolation='nearest')
    before = _results()
    out = deform(_results())
    img, gt = out['img'], out['gt_seg_map']
    assert img.shape == before['img'].shape and img.dtype == np.uint8
    assert gt.shape == before['gt_seg_map'].shape and gt.dtype == np.uint8
    assert not np.array_equal(gt, before['gt_seg_map'])  # it did deform
    inside = gt != 255
    # Wherever the source pixel lay inside the image, image and mask moved together.
    np.testing.assert_array_equal(img[..., 0][inside], gt[inside] * 200 + 20)
    # Outside, the image gets pad_val and the mask the ignored label.
    np.testing.assert_array_equal(img[~inside], 0)
    assert set(np.unique(gt)) <= {0, 1, 255}


@pytest.mark.parametrize('alpha,sigma,size', [(80.0, 3.0, (64, 48)), (1000.0, 16.0, (96, 80))])
def test_the_field_is_torchvisions_drawn_from_numpys_generator(alpha, sigma, size):
    # torchvision's field: noise in [-1, 1], blurred by its dense Gaussian kernel (reflected
    # borders), times alpha over the side; here from NumPy's noise, x then y.
    height, width = size
    taps = int(8 * sigma + 1)
    taps += 1 - taps % 2
    np.random.seed(3)
    noise = [torch.from_numpy((np.random.rand(height, width) * 2 - 1).astype(np.float32))
             for _ in range(2)]
    expected = torch.stack([
        F.gaussian_blur(n[None, None], [taps, taps], [sigma, sigma])[0, 0] * alpha / side
        for n, side in zip(noise, (width, height))], dim=-1)[None]
    np.random.seed(3)
    field = RandomElasticDeform(alpha=alpha, sigma=sigma).displacement(height, width)
    assert field.shape == (1, height, width, 2) and field.dtype == torch.float32
    torch.testing.assert_close(field, expected, atol=1e-6 * alpha / min(size), rtol=0)


def test_the_transform_applies_torchvisions_elastic_kernel_and_no_torch_generator():
    np.random.seed(7)
    assert np.random.rand() < 0.5  # the probability draw, then the field
    field = RandomElasticDeform(alpha=80.0, sigma=3.0).displacement(64, 64)
    image = torch.from_numpy(_results()['img']).permute(2, 0, 1)
    expected = F.elastic(image, field, fill=[0.0]).permute(1, 2, 0).numpy()

    np.random.seed(7)
    state = torch.random.get_rng_state()
    out = RandomElasticDeform(prob=0.5, alpha=80.0, sigma=3.0)(_results())
    np.testing.assert_array_equal(out['img'], expected)
    assert not np.array_equal(out['img'], _results()['img'])
    assert torch.equal(torch.random.get_rng_state(), state)


def test_prob_zero_leaves_everything_unchanged_and_grey_images_keep_their_shape():
    results = _results()
    out = RandomElasticDeform(prob=0.0)(_results())
    np.testing.assert_array_equal(out['img'], results['img'])
    np.testing.assert_array_equal(out['gt_seg_map'], results['gt_seg_map'])
    grey = dict(img=results['img'][..., 0].copy())
    assert RandomElasticDeform(prob=1.0)(grey)['img'].shape == (64, 64)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='prob must lie in'):
        RandomElasticDeform(prob=1.5)
    with pytest.raises(ValueError, match="interpolation must be 'bilinear' or 'nearest'"):
        RandomElasticDeform(interpolation='cubic')
