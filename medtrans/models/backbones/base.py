"""The image-embedding interface of medtrans backbones, and the base of the timm-backed ones."""
from typing import (
    ClassVar,
    Dict,
    List,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Union,
    runtime_checkable,
)

import timm
import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule

from ..utils import kaiming_init_, load_state_dict_exactly, read_backbone_weights

__all__ = ['EmbeddingBackbone', 'TimmBackbone']

OUT_TYPES = ('featmap', 'embedding')
INITS = ('kaiming', 'timm')


@runtime_checkable
class EmbeddingBackbone(Protocol):
    """What classification heads, k-NN evaluation and DINO need from a backbone.

    A backbone, medtrans's or a plugin's, provides

    - ``num_features`` (int): the width C of its image embedding;
    - ``forward_embedding(x)``: images ``(B, 3, H, W)`` -> the embedding ``(B, C)``: the CLS
      token (after the final norm) for ViTs, the globally average-pooled last stage for CNNs
      and Swin.

    ``isinstance(backbone, EmbeddingBackbone)`` checks that both exist.
    """

    num_features: int

    def forward_embedding(self, x: torch.Tensor) -> torch.Tensor:
        ...


def normalise_out_indices(out_indices: Union[int, Sequence[int]], num_levels: int,
                          owner: str) -> Tuple[int, ...]:
    """Resolve negative indices and sort; each must name one of ``num_levels`` levels once."""
    indices = (out_indices, ) if isinstance(out_indices, int) else tuple(out_indices)
    if not indices:
        raise ValueError(f'{owner}: out_indices must name at least one level')
    resolved = []
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int) \
                or not -num_levels <= index < num_levels:
            raise ValueError(f'{owner}: out_indices entries must be ints in '
                             f'[{-num_levels}, {num_levels}), got {out_indices!r}')
        resolved.append(index % num_levels)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f'{owner}: out_indices name a level twice: {out_indices!r}')
    return tuple(sorted(resolved))


def check_drop_path_rate(rate: float, owner: str) -> None:
    """Stochastic depth drops a fraction in [0, 1) of the residual branches."""
    if not 0 <= rate < 1:
        raise ValueError(f'{owner}: drop_path_rate must be in [0, 1), got {rate!r}')


class TimmBackbone(BaseModule):
    """Base of the backbones that wrap a timm model: one interface, three initialisations.

    Subclasses give the timm architecture; this class builds it without classifier
    (``num_classes=0``, nothing downloaded) and provides:

    - ``forward(x)``: a tuple, as OpenMMLab backbones return. ``out_type='featmap'``: the
      feature maps ``(B, C_i, H_i, W_i)`` of the ``out_indices`` levels (timm's
      ``feature_info`` levels; the last one after the model's final norm, if it has one).
      ``out_type='embedding'``: ``(forward_embedding(x),)``, which mmpretrain's
      ``ImageClassifier`` heads (``LinearClsHead``, ``MultiLabelLinearClsHead``: they read
      ``feats[-1]``) take without a neck.
    - ``forward_embedding(x)`` -> ``(B, num_features)``: timm's
      ``forward_head(forward_features(x), pre_logits=True)``, i.e. the pooled last stage
      (:class:`EmbeddingBackbone`).
    - ``init``: ``'kaiming'`` (the paper's random initialisation) or ``'timm'`` (timm's own);
      ``pretrained``: a local weight file, read by ``init_weights()`` (see
      :func:`medtrans.models.utils.read_backbone_weights` for the accepted formats).

    Args:
        arch (str): Name of the architecture, for messages.
        timm_name (str): timm architecture built.
        timm_kwargs (dict): Further arguments of ``timm.create_model``.
        out_type (str): ``'featmap'`` or ``'embedding'``.
        out_indices (int | Sequence[int]): Levels returned as feature maps (negative counts
            from the end); with ``'embedding'`` only the last level is allowed.
        pretrained (str, optional): Local weight file, or None.
        init (str): ``'kaiming'`` or ``'timm'``.
        init_cfg (dict | list[dict], optional): MMEngine initialisation config.
        channels_last (bool): Keep the weights and inputs in the channels-last memory layout
            (NHWC), which cuDNN's mixed-precision convolutions prefer; the results are the
            same. For CNNs. Defaults to False.
    """

    #: Attribute holding the timm model; the backbone's state dict keys start with it.
    inner_name: ClassVar[str] = 'timm_model'
    #: Key prefixes of the ImageNet classifier, dropped from timm weight files.
    classifier_prefixes: ClassVar[Tuple[str, ...]] = ()
    #: Smallest input height and width the architecture takes.
    min_input_size: ClassVar[int] = 1
    #: Input heights and widths must be multiples of this (a patch embedding's stride).
    input_multiple: ClassVar[int] = 1

    @classmethod
    def input_sides(cls, **kwargs) -> Tuple[int, int]:
        """What the height and width of an input must be, for a backbone built with ``kwargs``
        (its config): a multiple of the first number and at least the second. ``--img-size``
        keeps every input size of a config so (:func:`medtrans.apis.retarget`).

        Returns:
            tuple[int, int]: ``(multiple, minimum)``.
        """
        return cls.input_multiple, cls.min_input_size

    def __init__(self,
                 arch: str,
                 timm_name: str,
                 timm_kwargs: Dict,
                 out_type: str = 'featmap',
                 out_indices: Union[int, Sequence[int]] = (-1, ),
                 pretrained: Optional[str] = None,
                 init: str = 'kaiming',
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 channels_last: bool = False) -> None:
        super().__init__(init_cfg=init_cfg)
        owner = type(self).__name__
        if out_type not in OUT_TYPES:
            raise ValueError(f'{owner}: out_type must be one of {OUT_TYPES}, got {out_type!r}')
        if init not in INITS:
            raise ValueError(f'{owner}: init must be one of {INITS}, got {init!r}')
        self.arch = arch
        self.out_type = out_type
        self.pretrained = pretrained
        model = timm.create_model(timm_name, pretrained=False, num_classes=0, **timm_kwargs)
        # MMEngine's init_weights() recurses into children that have an init_weights method;
        # timm's would overwrite the weights set here, so it is marked as initialised.
        model.is_init = True
        setattr(self, self.inner_name, model)
        self.num_features: int = model.num_features
        num_levels = len(model.feature_info)
        self.out_indices = normalise_out_indices(out_indices, num_levels, owner)
        if out_type == 'embedding' and self.out_indices != (num_levels - 1, ):
            raise ValueError(f"{owner}: out_indices select feature maps, which out_type="
                             f"'embedding' does not return; leave them at (-1,), got "
                             f'{out_indices!r}')
        if init == 'kaiming':
            self._kaiming_init()
        self.channels_last = channels_last
        if channels_last:
            # Loading weights later copies into these tensors, which keeps their layout.
            model.to(memory_format=torch.channels_last)

    @property
    def inner(self) -> nn.Module:
        """The wrapped timm model."""
        return getattr(self, self.inner_name)

    def init_weights(self) -> None:
        """Apply ``init_cfg`` and load ``pretrained`` (once; later calls change nothing)."""
        first_call = not self.is_init
        super().init_weights()
        if first_call and self.pretrained is not None:
            self._load_pretrained(self.pretrained)

    def _kaiming_init(self) -> None:
        """Kaiming normal (fan-in) for convolutions and linears, norms 1 / 0, biases 0."""
        kaiming_init_(self.inner, mode='fan_in')

    def _convert_state_dict(self, state_dict: Dict[str, torch.Tensor],
                            path: str) -> Dict[str, torch.Tensor]:
        """Adapt a state dict in timm's layout to this model (resampling, old layouts)."""
        return state_dict

    def _is_dropped(self, key: str) -> bool:
        """Whether a key of a weight file is ignored (the ImageNet classifier)."""
        return key.startswith(self.classifier_prefixes)

    def _load_pretrained(self, path: str) -> None:
        owner = type(self).__name__
        state_dict, is_export = read_backbone_weights(path, f'{self.inner_name}.')
        state_dict = self._convert_state_dict(state_dict, path)
        dropped = [k for k in state_dict if self._is_dropped(k)]
        for key in dropped:
            del state_dict[key]
        if dropped:
            print_log(f'{owner}: ignored {", ".join(dropped)} of {path}', logger='current')
        load_state_dict_exactly(self.inner, state_dict, source=f'`pretrained` file {path}',
                                target=f'{owner} ({self.arch})')
        kind = 'medtrans backbone weights' if is_export else 'timm weights'
        print_log(f'{owner} ({self.arch}): loaded {kind} from {path}', logger='current')

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Refuse what the architecture cannot take; the input in the model's layout."""
        size = self.min_input_size
        if x.dim() != 4 or min(x.shape[-2:]) < size:
            raise ValueError(f'{type(self).__name__} ({self.arch}) expects images (B, C, H, W) '
                             f'of at least {size}x{size} pixels, got shape {tuple(x.shape)}')
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Extract features.

        Args:
            x (torch.Tensor): Images ``(B, 3, H, W)``.

        Returns:
            tuple[torch.Tensor]: ``out_type='featmap'``: one ``(B, C_i, H_i, W_i)`` map per
            ``out_indices`` level, in level order; ``'embedding'``: ``(embedding (B, C),)``.
        """
        if self.out_type == 'embedding':
            return (self.forward_embedding(x), )
        x = self._check_input(x)
        return tuple(self.inner.forward_intermediates(
            x, indices=list(self.out_indices), norm=True, stop_early=True,
            intermediates_only=True))

    def forward_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The image embedding ``(B, num_features)``: timm's pre-logits features.

        Args:
            x (torch.Tensor): Images ``(B, 3, H, W)``.

        Returns:
            torch.Tensor: ``(B, num_features)``.
        """
        x = self._check_input(x)
        model = self.inner
        return model.forward_head(model.forward_features(x), pre_logits=True)
