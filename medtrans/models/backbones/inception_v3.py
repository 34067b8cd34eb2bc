"""Inception-v3 backbone on timm (torchvision layout), with the medtrans embedding interface."""
from typing import List, Optional, Sequence, Union

from medtrans.registry import MODELS

from .base import TimmBackbone

__all__ = ['TimmInceptionV3']


@MODELS.register_module()
class TimmInceptionV3(TimmBackbone):
    """Inception-v3 built on timm's ``InceptionV3`` (torchvision's key names), without the
    auxiliary classifier.

    Paper: `Rethinking the Inception Architecture for Computer Vision
    <https://arxiv.org/abs/1512.00567>`_.

    The embedding is the globally average-pooled ``Mixed_7c`` output, 2048 wide. Inputs must be
    at least 75x75 pixels. Feature levels (``out_indices``): 0-1 the stem (``Conv2d_2b_3x3``,
    ``Conv2d_4a_3x3``), 2-4 ``Mixed_5d``, ``Mixed_6e``, ``Mixed_7c``. Weight files: timm's or
    torchvision's ImageNet state dicts (the classifier ``fc.*`` and the auxiliary classifier
    ``AuxLogits.*`` are dropped) or a medtrans backbone file. The ``tv_in1k`` weights expect
    inputs normalised to [-1, 1] (mean = std = 127.5), not ImageNet's mean and std; see
    ``docs/models.md``.

    Args:
        out_type (str): ``'featmap'`` or ``'embedding'``. Defaults to ``'featmap'``.
        out_indices (int | Sequence[int]): Levels returned as feature maps. Defaults to
            ``(-1,)``.
        pretrained (str, optional): Local weight file, read by ``init_weights()``.
            Defaults to None.
        init (str): ``'kaiming'`` or ``'timm'`` (truncated normal, std 0.1).
            Defaults to ``'kaiming'``.
        init_cfg (dict | list[dict], optional): MMEngine initialisation config.
        channels_last (bool): Weights and inputs in the channels-last (NHWC) layout, which
            cuDNN's mixed-precision convolutions prefer. Defaults to False.
            Defaults to None.
    """

    classifier_prefixes = ('fc.', 'AuxLogits.')
    min_input_size = 75

    def __init__(self,
                 out_type: str = 'featmap',
                 out_indices: Union[int, Sequence[int]] = (-1, ),
                 pretrained: Optional[str] = None,
                 init: str = 'kaiming',
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 channels_last: bool = False) -> None:
        super().__init__(
            arch='inception_v3', timm_name='inception_v3', timm_kwargs={}, out_type=out_type,
            out_indices=out_indices, pretrained=pretrained, init=init, init_cfg=init_cfg,
            channels_last=channels_last)
