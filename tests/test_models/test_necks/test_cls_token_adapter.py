"""ClsTokenAdapter: DeiT tokens -> the map a DeepLabV3 head reads, for every option."""
import pytest
import torch
import torch.nn.functional as F

from medtrans.models import ClsTokenAdapter, DeiT
from medtrans.registry import MODELS

SIZE = 512  # the paper's segmentation input size
C = 192  # DeiT-T


@pytest.fixture(scope='module')
def features():
    """DeiT-T outputs for one 512x512 image, patch 16 and patch 8 (computed once)."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, SIZE, SIZE)
    outs = {}
    for patch_size in (16, 8):
        backbone = DeiT(arch='deit-tiny', patch_size=patch_size).eval()
        with torch.no_grad():
            outs[patch_size] = backbone(x)
    return outs


@pytest.mark.parametrize('patch_size, output_stride', [(16, 16), (16, 8), (8, 8)])
@pytest.mark.parametrize('fusion, fused_channels', [('concat', 2 * C), ('add', C), ('none', C)])
@pytest.mark.parametrize('out_channels', [None, 64])
def test_output_shapes_at_512(features, patch_size, output_stride, fusion, fused_channels,
                              out_channels):
    adapter = ClsTokenAdapter(
        in_channels=C, fusion=fusion, out_channels=out_channels, patch_size=patch_size,
        output_stride=output_stride).eval()
    with torch.no_grad():
        outs = adapter(features[patch_size])
    expected_channels = out_channels or fused_channels
    assert adapter.out_channels == expected_channels
    assert isinstance(outs, tuple) and len(outs) == 1
    side = SIZE // output_stride
    assert outs[0].shape == (1, expected_channels, side, side)
    if out_channels is not None:
        assert (outs[0] >= 0).all()  # conv + BN + ReLU


def test_fusion_modes_place_the_cls_token_at_every_position(features):
    patch_map, cls = features[16][-1]
    broadcast = cls[:, :, None, None].expand_as(patch_map)
    with torch.no_grad():
        concat, = ClsTokenAdapter(C, fusion='concat')(features[16])
        added, = ClsTokenAdapter(C, fusion='add')(features[16])
        plain, = ClsTokenAdapter(C, fusion='none')(features[16])
    torch.testing.assert_close(concat, torch.cat([patch_map, broadcast], dim=1))
    torch.testing.assert_close(added, patch_map + broadcast)
    torch.testing.assert_close(plain, patch_map)


def test_upsampling_is_bilinear_after_projection(features):
    torch.manual_seed(0)
    stride16 = ClsTokenAdapter(C, out_channels=32, output_stride=16).eval()
    stride8 = ClsTokenAdapter(C, out_channels=32, output_stride=8).eval()
    stride8.load_state_dict(stride16.state_dict())
    with torch.no_grad():
        coarse, = stride16(features[16])
        fine, = stride8(features[16])
    expected = F.interpolate(coarse, scale_factor=2, mode='bilinear', align_corners=False)
    torch.testing.assert_close(fine, expected)


def test_fuses_every_entry_and_projects_only_the_last():
    deep = [torch.randn(1, 8, 2, 3), torch.randn(1, 8)]
    shallow = [torch.randn(1, 8, 2, 3), torch.randn(1, 8)]
    aux, main = ClsTokenAdapter(8, fusion='add')((shallow, deep))
    torch.testing.assert_close(main, deep[0] + deep[1][:, :, None, None])
    torch.testing.assert_close(aux, shallow[0] + shallow[1][:, :, None, None])
    adapter = ClsTokenAdapter(8, fusion='concat', out_channels=4).eval()
    aux, main = adapter((shallow, deep))
    assert aux.shape == (1, 16, 2, 3) and main.shape == (1, 4, 2, 3)


def test_none_fusion_accepts_a_backbone_without_cls_token():
    backbone = DeiT(arch='deit-tiny', output_cls_token=False)
    out, = ClsTokenAdapter(C, fusion='none')(backbone(torch.randn(1, 3, 32, 64)))
    assert out.shape == (1, C, 2, 4)


def test_fusion_without_cls_token_is_an_error():
    with pytest.raises(ValueError, match='output_cls_token=True'):
        ClsTokenAdapter(8, fusion='concat')((torch.randn(1, 8, 2, 2), ))


def test_wrong_in_channels_is_an_error():
    with pytest.raises(ValueError, match='in_channels'):
        ClsTokenAdapter(16)(([torch.randn(1, 8, 2, 2), torch.randn(1, 8)], ))


@pytest.mark.parametrize('kwargs, match', [
    (dict(fusion='mean'), 'fusion'),
    (dict(patch_size=8, output_stride=16), 'cannot exceed'),
    (dict(patch_size=16, output_stride=6), 'must divide'),
    (dict(out_channels=0), 'out_channels'),
    (dict(in_channels=0), 'in_channels'),
])
def test_invalid_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClsTokenAdapter(**dict(dict(in_channels=C), **kwargs))


def test_builds_from_registry():
    adapter = MODELS.build(
        dict(type='ClsTokenAdapter', in_channels=C, out_channels=64, norm_cfg=dict(type='GN',
                                                                                  num_groups=8)))
    assert isinstance(adapter.proj.norm, torch.nn.GroupNorm)
    assert adapter.out_channels == 64
