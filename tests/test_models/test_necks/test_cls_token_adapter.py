"""ClsTokenAdapter: DeiT tokens -> the map a DeepLabV3 head reads, for every option.

Outputs are compared bit for bit with ``interpolate(proj(fuse(patch_map, cls)))`` written out
with torch's functional ops and the adapter's own weights (:func:`reference`).
"""
from typing import Optional

import pytest
import torch
import torch.nn.functional as F

from medtrans.models import ClsTokenAdapter, DeiT
from medtrans.registry import MODELS

SIZE = 512  # the paper's segmentation input size
C = 192  # DeiT-T


def reference(adapter: ClsTokenAdapter, patch_map: torch.Tensor, cls: Optional[torch.Tensor],
              project: bool) -> torch.Tensor:
    """The adapter's documented computation for one backbone entry, op by op."""
    if adapter.fusion == 'concat':
        x = torch.cat([patch_map, cls[:, :, None, None].expand_as(patch_map)], dim=1)
    elif adapter.fusion == 'add':
        x = patch_map + cls[:, :, None, None]
    else:
        x = patch_map
    if project and adapter.proj is not None:
        conv, norm = adapter.proj.conv, adapter.proj.norm
        x = F.conv2d(x, conv.weight, conv.bias)
        # In training mode the norm takes the statistics of the coarse map (upsampling first
        # would give others); the clones leave the running statistics to the adapter's forward.
        x = F.batch_norm(x, norm.running_mean.clone(), norm.running_var.clone(), norm.weight,
                         norm.bias, training=norm.training, momentum=norm.momentum,
                         eps=norm.eps)
        x = F.relu(x)
    scale = adapter.patch_size // adapter.output_stride
    if scale > 1:
        x = F.interpolate(x, size=(x.shape[2] * scale, x.shape[3] * scale), mode='bilinear',
                          align_corners=adapter.align_corners)
    return x


def randomise_norm(adapter: ClsTokenAdapter) -> None:
    """Give the projection's norm non-trivial statistics and affine weights."""
    norm = adapter.proj.norm
    with torch.no_grad():
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()


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
def test_output_at_512_is_interpolate_proj_fuse(features, patch_size, output_stride, fusion,
                                                fused_channels, out_channels):
    torch.manual_seed(0)
    adapter = ClsTokenAdapter(
        in_channels=C, fusion=fusion, out_channels=out_channels, patch_size=patch_size,
        output_stride=output_stride).eval()
    if out_channels is not None:
        randomise_norm(adapter)
    with torch.no_grad():
        outs = adapter(features[patch_size])
        expected = reference(adapter, *features[patch_size][-1], project=True)
    assert adapter.out_channels == (out_channels or fused_channels)
    assert isinstance(outs, tuple) and len(outs) == 1
    side = SIZE // output_stride
    assert expected.shape == (1, adapter.out_channels, side, side)
    assert torch.equal(outs[0], expected)


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('output_stride', [16, 8, 4])
@pytest.mark.parametrize('fusion', ['concat', 'add', 'none'])
def test_every_entry_is_fused_and_upsampled_and_only_the_last_projected(
        fusion, output_stride, align_corners):
    torch.manual_seed(0)
    entries = [[torch.randn(2, 8, 3, 5), torch.randn(2, 8)] for _ in range(3)]
    adapter = ClsTokenAdapter(8, fusion=fusion, out_channels=4, output_stride=output_stride,
                              align_corners=align_corners)
    randomise_norm(adapter)
    for mode in ('eval', 'train'):
        getattr(adapter, mode)()
        expected = [reference(adapter, *entry, project=i == 2) for i, entry in enumerate(entries)]
        with torch.no_grad():
            outs = adapter(entries)
        assert len(outs) == 3
        for out, ref in zip(outs, expected):
            assert torch.equal(out, ref), (mode, out.shape, ref.shape)


def test_none_fusion_accepts_a_backbone_without_cls_token():
    torch.manual_seed(0)
    backbone = DeiT(arch='deit-tiny', output_cls_token=False).eval()
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        patch_map, = backbone(x)
        out, = ClsTokenAdapter(C, fusion='none')(backbone(x))
    assert patch_map.shape == (1, C, 2, 4)
    assert torch.equal(out, patch_map)


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
