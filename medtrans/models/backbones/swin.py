"""Swin Transformer backbone on timm, with the medtrans embedding interface."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from timm.models.swin_transformer import WindowAttention, checkpoint_filter_fn

from medtrans.registry import MODELS

from .base import TimmBackbone, check_drop_path_rate

__all__ = ['TimmSwinTransformer']

_ARCHS = {'swin-tiny': 'swin_tiny_patch4_window7_224'}


@MODELS.register_module()
class TimmSwinTransformer(TimmBackbone):
    """Swin Transformer (patch 4, window 7) built on timm's ``SwinTransformer``.

    Paper: `Swin Transformer: Hierarchical Vision Transformer using Shifted Windows
    <https://arxiv.org/abs/2103.14030>`_.

    The embedding is, as in timm, the last stage after the final LayerNorm, averaged over
    positions: 768 wide for Swin-T. The model is built for 224x224 windows and biases and with
    ``dynamic_img_size=True``, so it takes any input size that is a multiple of 4 (the patch
    size; attention masks built per input).
    Feature levels (``out_indices``): the four stages (strides 4 to 32); the last after the
    final norm. Weight files: timm's ImageNet state dicts, the original Microsoft releases
    (converted by timm's ``checkpoint_filter_fn``, which also resizes relative position bias
    tables), the classifier ``head.fc.*`` dropped, or a medtrans backbone file.

    Args:
        arch (str): ``'swin-tiny'`` (Swin-T). Defaults to ``'swin-tiny'``.
        drop_path_rate (float): Stochastic depth rate. Defaults to 0.1 (timm's default).
        out_type (str): ``'featmap'`` or ``'embedding'``. Defaults to ``'featmap'``.
        out_indices (int | Sequence[int]): Stages returned as feature maps. Defaults to
            ``(-1,)``.
        pretrained (str, optional): Local weight file, read by ``init_weights()``.
            Defaults to None.
        init (str): ``'kaiming'`` (linears and the patch embedding Kaiming normal fan-in,
            LayerNorms 1 / 0, relative position bias tables truncated normal std 0.02, as
            Swin's) or ``'timm'`` (timm's). Defaults to ``'kaiming'``.
        init_cfg (dict | list[dict], optional): MMEngine initialisation config.
            Defaults to None.
    """

    classifier_prefixes = ('head.fc.', )
    input_multiple = 4  # the patch embedding's stride

    def __init__(self,
                 arch: str = 'swin-tiny',
                 drop_path_rate: float = 0.1,
                 out_type: str = 'featmap',
                 out_indices: Union[int, Sequence[int]] = (-1, ),
                 pretrained: Optional[str] = None,
                 init: str = 'kaiming',
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if arch not in _ARCHS:
            raise ValueError(f'TimmSwinTransformer: arch must be one of {sorted(_ARCHS)}, got '
                             f'{arch!r}')
        check_drop_path_rate(drop_path_rate, 'TimmSwinTransformer')
        timm_kwargs = dict(
            dynamic_img_size=True,
            drop_path_rate=drop_path_rate,
            # timm's initialisation is wasted when the Kaiming one below replaces it.
            weight_init='' if init == 'timm' else 'skip')
        super().__init__(
            arch=arch, timm_name=_ARCHS[arch], timm_kwargs=timm_kwargs, out_type=out_type,
            out_indices=out_indices, pretrained=pretrained, init=init, init_cfg=init_cfg)

    def _kaiming_init(self) -> None:
        super()._kaiming_init()
        for module in self.inner.modules():
            if isinstance(module, WindowAttention):
                nn.init.trunc_normal_(module.relative_position_bias_table, std=.02)

    def _convert_state_dict(self, state_dict: Dict[str, torch.Tensor],
                            path: str) -> Dict[str, torch.Tensor]:
        return checkpoint_filter_fn(state_dict, self.inner)
