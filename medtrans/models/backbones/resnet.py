"""ResNet backbones on timm (torchvision layout), with the medtrans embedding interface."""
from typing import List, Optional, Sequence, Union

from medtrans.registry import MODELS

from .base import TimmBackbone

__all__ = ['TimmResNet']

_DEPTHS = {18: 'resnet18', 50: 'resnet50', 152: 'resnet152'}


@MODELS.register_module()
class TimmResNet(TimmBackbone):
    """ResNet-18/50/152 built on timm's ``ResNet`` (torchvision's architecture and key names).

    Paper: `Deep Residual Learning for Image Recognition <https://arxiv.org/abs/1512.03385>`_.

    The embedding is the globally average-pooled output of the last stage, 512 wide for
    ResNet-18 and 2048 for ResNet-50/152. Feature levels (``out_indices``): 0 the stem
    (stride 2), 1-4 the four stages (strides 4 to 32). Weight files: timm's or torchvision's
    ImageNet state dicts (the classifier ``fc.*`` is dropped) or a medtrans backbone file;
    see :class:`TimmBackbone` and ``docs/models.md``.

    Named ``TimmResNet``, not ``ResNet``, so that a config that forgets the ``medtrans.`` scope
    prefix fails instead of building mmpretrain's or mmseg's ``ResNet``.

    Args:
        depth (int): 18, 50 or 152. Defaults to 50.
        out_type (str): ``'featmap'`` or ``'embedding'``. Defaults to ``'featmap'``.
        out_indices (int | Sequence[int]): Levels returned as feature maps. Defaults to
            ``(-1,)`` (the last stage).
        pretrained (str, optional): Local weight file, read by ``init_weights()``.
            Defaults to None.
        init (str): ``'kaiming'`` (Kaiming normal fan-in, BN weight 1 / bias 0) or ``'timm'``
            (timm's: Kaiming normal fan-out, last BN of each block zero). Defaults to
            ``'kaiming'``.
        init_cfg (dict | list[dict], optional): MMEngine initialisation config.
        channels_last (bool): Weights and inputs in the channels-last (NHWC) layout, which
            cuDNN's mixed-precision convolutions prefer. Defaults to False.
            Defaults to None.
    """

    classifier_prefixes = ('fc.', )

    def __init__(self,
                 depth: int = 50,
                 out_type: str = 'featmap',
                 out_indices: Union[int, Sequence[int]] = (-1, ),
                 pretrained: Optional[str] = None,
                 init: str = 'kaiming',
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 channels_last: bool = False) -> None:
        if depth not in _DEPTHS:
            raise ValueError(f'TimmResNet: depth must be one of {sorted(_DEPTHS)}, got {depth!r}')
        super().__init__(
            arch=_DEPTHS[depth], timm_name=_DEPTHS[depth], timm_kwargs={}, out_type=out_type,
            out_indices=out_indices, pretrained=pretrained, init=init, init_cfg=init_cfg,
            channels_last=channels_last)
        self.depth = depth
