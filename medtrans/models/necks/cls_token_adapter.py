"""Turn a ViT's tokens into the feature map that a DeepLabV3 (ASPP) head reads."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule

from medtrans.registry import MODELS

__all__ = ['ClsTokenAdapter']

_FUSIONS = ('concat', 'add', 'none')


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f'ClsTokenAdapter: {name} must be a positive int, got {value!r}')


@MODELS.register_module()
class ClsTokenAdapter(BaseModule):
    """Adapter from a ViT backbone (such as :class:`medtrans.models.DeiT`) to DeepLabV3.

    For each entry of the backbone's output, ``[patch_map (B, C, h, w), cls (B, C)]`` (or a bare
    patch map when the CLS token is not fused), fuses the CLS token, which summarises the whole
    image, into every position of the patch map and upsamples bilinearly to the requested
    output stride. The last entry (the last block's tokens, for the DeepLabV3 head) is optionally
    projected with a 1x1 convolution + norm + ReLU; earlier entries serve auxiliary heads.
    See ``docs/models.md``.

    Channels of the last output (the ``in_channels`` of the ASPP head): ``out_channels`` when
    set, else ``2 * in_channels`` for ``'concat'`` and ``in_channels`` for ``'add'`` and
    ``'none'``; also available as the attribute ``out_channels`` once built. Earlier outputs
    have the unprojected width.

    Args:
        in_channels (int): Channels C of the backbone's tokens (192 / 384 / 768 for DeiT-T/S/B).
        fusion (str): ``'concat'``: append the CLS token to every position's features;
            ``'add'``: add it to them; ``'none'``: ignore it. Defaults to ``'concat'``.
        out_channels (int, optional): Channels of a 1x1 conv + norm + ReLU projection after the
            fusion; None for no projection. Defaults to None.
        patch_size (int): Stride of the token grid relative to the input image (the backbone's
            patch size). Defaults to 16.
        output_stride (int): Stride of the output map relative to the input image; at most
            ``patch_size`` and dividing it (16 or 8 for DeepLabV3). Defaults to 16.
        norm_cfg (dict, optional): Norm layer of the projection. Defaults to ``dict(type='BN')``.
        act_cfg (dict, optional): Activation of the projection. Defaults to
            ``dict(type='ReLU')``.
        align_corners (bool): ``align_corners`` of the bilinear upsampling. Defaults to False.
        init_cfg (dict | list[dict], optional): MMEngine initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 fusion: str = 'concat',
                 out_channels: Optional[int] = None,
                 patch_size: int = 16,
                 output_stride: int = 16,
                 norm_cfg: Optional[dict] = dict(type='BN'),  # noqa: B006 (ConvModule copies it)
                 act_cfg: Optional[dict] = dict(type='ReLU'),  # noqa: B006 (ConvModule copies it)
                 align_corners: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        _check_positive_int('in_channels', in_channels)
        if fusion not in _FUSIONS:
            raise ValueError(f'ClsTokenAdapter: fusion must be one of {_FUSIONS}, got {fusion!r}')
        if out_channels is not None:
            _check_positive_int('out_channels', out_channels)
        _check_positive_int('patch_size', patch_size)
        _check_positive_int('output_stride', output_stride)
        if output_stride > patch_size:
            raise ValueError(
                f'ClsTokenAdapter: output_stride ({output_stride}) cannot exceed the token '
                f'stride patch_size ({patch_size}); the adapter only upsamples')
        if patch_size % output_stride:
            raise ValueError(f'ClsTokenAdapter: output_stride ({output_stride}) must divide '
                             f'patch_size ({patch_size})')

        self.in_channels = in_channels
        self.fusion = fusion
        self.patch_size = patch_size
        self.output_stride = output_stride
        self.scale = patch_size // output_stride
        self.align_corners = align_corners
        fused_channels = 2 * in_channels if fusion == 'concat' else in_channels
        if out_channels is None:
            self.proj = None
            self.out_channels = fused_channels
        else:
            self.proj = ConvModule(
                fused_channels, out_channels, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
            self.out_channels = out_channels

    def _split(self, entry) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        if isinstance(entry, (tuple, list)):
            if len(entry) != 2:
                raise ValueError('ClsTokenAdapter expects each backbone entry to be '
                                 f'[patch_map, cls_token], got {len(entry)} tensors')
            patch_map, cls_token = entry
        else:
            patch_map, cls_token = entry, None
        if patch_map.dim() != 4 or patch_map.shape[1] != self.in_channels:
            raise ValueError(f'ClsTokenAdapter: expected a patch map (B, {self.in_channels}, '
                             f'h, w), got shape {tuple(patch_map.shape)}; check in_channels')
        if self.fusion != 'none':
            if cls_token is None:
                raise ValueError(
                    f'ClsTokenAdapter: fusion={self.fusion!r} needs the CLS token; build the '
                    "backbone with output_cls_token=True, or use fusion='none'")
            if cls_token.shape != patch_map.shape[:2]:
                raise ValueError(f'ClsTokenAdapter: CLS token of shape {tuple(cls_token.shape)} '
                                 f'does not match the patch map {tuple(patch_map.shape)}')
        return patch_map, cls_token

    def _fuse(self, entry, project: bool) -> torch.Tensor:
        x, cls_token = self._split(entry)
        if self.fusion == 'concat':
            x = torch.cat([x, cls_token[:, :, None, None].expand_as(x)], dim=1)
        elif self.fusion == 'add':
            x = x + cls_token[:, :, None, None]
        if project and self.proj is not None:
            # Projecting before upsampling is cheaper and, for a 1x1 conv, equivalent up to the
            # norm and activation.
            x = self.proj(x)
        if self.scale > 1:
            x = F.interpolate(
                x,
                size=(x.shape[2] * self.scale, x.shape[3] * self.scale),
                mode='bilinear',
                align_corners=self.align_corners)
        return x

    def forward(self, inputs: Sequence) -> Tuple[torch.Tensor, ...]:
        """Build the heads' input maps.

        Args:
            inputs (tuple): The backbone's output, one entry per returned block.

        Returns:
            tuple[torch.Tensor]: One map per entry, in the same order, each
            ``(B, C', H / output_stride, W / output_stride)``. The last (the DeepLabV3 head's,
            ``in_index=-1``) is projected when ``out_channels`` is set; earlier ones, for
            auxiliary heads, are fused and upsampled only.
        """
        if not isinstance(inputs, (tuple, list)) or not inputs:
            raise TypeError('ClsTokenAdapter expects the backbone output: a non-empty tuple '
                            f'of feature entries, got {type(inputs).__name__}')
        last = len(inputs) - 1
        return tuple(self._fuse(entry, project=i == last) for i, entry in enumerate(inputs))
