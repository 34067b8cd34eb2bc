"""DeiT backbone on timm's VisionTransformer: any input size, patch 16 or 8, local weights."""
import inspect
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from timm.layers import resample_abs_pos_embed, resample_patch_embed

from medtrans.registry import MODELS
from medtrans.utils.upstream import vit_pos_embed

from .base import TimmBackbone, check_drop_path_rate

__all__ = ['DeiT']

# timm architectures of the DeiT family without distillation token; only the embedding width,
# depth and heads are taken from them (the patch size and image size are ours).
_ARCHS = {
    'deit-tiny': 'deit_tiny_patch16_224',
    'deit-small': 'deit_small_patch16_224',
    'deit-base': 'deit_base_patch16_224',
}
# Keys of an ``arch`` dict (mmpretrain's names) -> timm's VisionTransformer arguments.
_ARCH_KEYS = {'embed_dims': 'embed_dim', 'num_layers': 'depth', 'num_heads': 'num_heads'}
_PATCH_SIZES = (16, 8)
# The same resampling as timm's own checkpoint loading, so that both give identical weights.
_RESAMPLE = dict(interpolation='bicubic', antialias=True)

FeatureOutput = Union[torch.Tensor, List[torch.Tensor]]


def _resolve_arch(arch: Union[str, Dict[str, int]]) -> Tuple[str, str, Dict[str, int]]:
    """The name for messages, the timm architecture and the size arguments it is built with."""
    if isinstance(arch, str) and arch in _ARCHS:
        return arch, _ARCHS[arch], {}
    if not isinstance(arch, dict):
        raise ValueError(f'DeiT: arch must be one of {sorted(_ARCHS)} or a dict of '
                         f'{sorted(_ARCH_KEYS)}, got {arch!r}')
    if set(arch) != set(_ARCH_KEYS) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in arch.values()):
        raise ValueError(f'DeiT: an arch dict must give exactly {sorted(_ARCH_KEYS)}, each a '
                         f'positive int, got {arch!r}')
    if arch['embed_dims'] % arch['num_heads']:
        raise ValueError(f'DeiT: embed_dims ({arch["embed_dims"]}) must be a multiple of '
                         f'num_heads ({arch["num_heads"]})')
    name = 'deit-' + '-'.join(f'{k}{arch[k]}' for k in _ARCH_KEYS)
    return name, _ARCHS['deit-tiny'], {_ARCH_KEYS[k]: v for k, v in arch.items()}


@MODELS.register_module()
class DeiT(TimmBackbone):
    """DeiT (data-efficient image transformer) backbone built on timm's ``VisionTransformer``.

    Paper: `Training data-efficient image transformers & distillation through attention
    <https://arxiv.org/abs/2012.12877>`_ (the architectures without distillation token).

    The timm model is built with ``dynamic_img_size=True``, so one model takes any input size,
    square or not: its position embeddings (for the ``img_size`` grid) are interpolated at run
    time to the input's patch grid. Height and width must be multiples of the patch size.

    The image embedding (:meth:`forward_embedding`, ``num_features`` = ``embed_dims`` wide) is
    the last block's CLS token after the final norm. ``out_type='featmap'`` (the segmentation
    form) returns per ``out_indices`` block ``[patch_map, cls_token]``; ``'embedding'`` returns
    ``(embedding,)`` for classification heads (see :class:`TimmBackbone`).

    A built module holds random weights (``init``); ``init_weights()``, which the Runner calls
    before training, reads ``pretrained``, as mmseg backbones do with their ``init_cfg``. So a
    config builds without its ImageNet file (to test a trained checkpoint, say), and a model
    restored from a checkpoint never reads it.

    Loading ``pretrained`` (a timm / DeiT ImageNet state dict or a medtrans backbone weight
    file, ``.pth`` or ``.safetensors``, read with ``weights_only`` so the file cannot run code):

    - classifier keys (``head.*``) are dropped, and the final norm's when ``final_norm=False``;
    - position embeddings are resampled (bicubic) from the checkpoint's grid to this model's;
    - a patch-16 kernel loaded into a patch-8 model is resampled with timm's
      ``resample_patch_embed`` (FlexiViT's pseudo-inverse resize), which is logged;
    - any other missing, unexpected or mis-shaped key is an error naming the file.

    Args:
        arch (str | dict): ``'deit-tiny'``, ``'deit-small'`` or ``'deit-base'`` (embedding
            widths 192, 384, 768; 12 blocks), or the DeiT design at another size, as a dict of
            ``embed_dims``, ``num_layers`` and ``num_heads`` (mmpretrain's keys; MLP ratio 4;
            no weight shape depends on ``num_heads``, so a weight file cannot be checked
            against it). Defaults to ``'deit-small'``.
        patch_size (int): 16 or 8. Patch 8 is the same architecture with 8x8 patches (four
            times as many tokens). Defaults to 16.
        img_size (int | tuple[int, int]): Size the position embeddings are stored for; inputs of
            other sizes still work. Defaults to 224.
        drop_path_rate (float): Stochastic depth rate (linearly increasing over the blocks).
            Defaults to 0.
        out_indices (int | Sequence[int]): Blocks whose tokens :meth:`forward` returns, negative
            indices counting from the end; outputs come in block order. Defaults to ``(-1,)``.
        final_norm (bool): Apply the final LayerNorm to the last block's output (outputs of
            earlier blocks are never normalised). Defaults to True.
        output_cls_token (bool): Return the CLS token beside each patch map. Defaults to True.
        out_type (str): ``'featmap'`` (patch maps, as above) or ``'embedding'`` (``forward``
            returns ``(forward_embedding(x),)``; ``out_indices`` must stay at the last block).
            Defaults to ``'featmap'``.
        pretrained (str, optional): Local weight file (timm ImageNet or medtrans backbone
            weights), read by ``init_weights()``. Defaults to None (random).
        init (str): Random initialisation when ``pretrained`` is None: ``'kaiming'`` (the
            paper's: Kaiming normal, fan-in, for convolutions and linears, zero biases,
            LayerNorm weight 1 / bias 0, position embedding and CLS token truncated normal with
            std 0.02) or ``'timm'`` (timm's DeiT initialisation). Defaults to ``'kaiming'``.
        init_cfg (dict | list[dict], optional): MMEngine initialisation config, applied by
            ``init_weights()``. Defaults to None.
    """

    inner_name = 'vit'
    classifier_prefixes = ('head.', )

    @classmethod
    def input_sides(cls, **kwargs) -> Tuple[int, int]:
        """Sides that are multiples of the patch size (``patch_size``, 16 by default)."""
        default = inspect.signature(cls.__init__).parameters['patch_size'].default
        return kwargs.get('patch_size', default), 1

    def __init__(self,
                 arch: Union[str, Dict[str, int]] = 'deit-small',
                 patch_size: int = 16,
                 img_size: Union[int, Tuple[int, int]] = 224,
                 drop_path_rate: float = 0.,
                 out_indices: Union[int, Sequence[int]] = (-1, ),
                 final_norm: bool = True,
                 output_cls_token: bool = True,
                 out_type: str = 'featmap',
                 pretrained: Optional[str] = None,
                 init: str = 'kaiming',
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        arch, timm_name, size_kwargs = _resolve_arch(arch)
        if patch_size not in _PATCH_SIZES:
            raise ValueError(f'DeiT: patch_size must be one of {_PATCH_SIZES}, got {patch_size!r}')
        check_drop_path_rate(drop_path_rate, 'DeiT')
        timm_kwargs = dict(
            dynamic_img_size=True,
            patch_size=patch_size,
            img_size=img_size,
            drop_path_rate=drop_path_rate,
            final_norm=final_norm,
            # timm's initialisation is slow (truncated normals) and wasted when the Kaiming
            # initialisation replaces it.
            weight_init='' if init == 'timm' else 'skip',
            **size_kwargs)
        super().__init__(
            arch=arch, timm_name=timm_name, timm_kwargs=timm_kwargs, out_type=out_type,
            out_indices=out_indices, pretrained=pretrained, init=init, init_cfg=init_cfg)
        self.patch_size = patch_size
        self.final_norm = final_norm
        self.output_cls_token = output_cls_token
        self.embed_dims: int = self.vit.embed_dim
        self.num_layers: int = len(self.vit.blocks)

    def _kaiming_init(self) -> None:
        super()._kaiming_init()
        nn.init.trunc_normal_(self.vit.pos_embed, std=.02)
        nn.init.trunc_normal_(self.vit.cls_token, std=.02)

    def _is_dropped(self, key: str) -> bool:
        return super()._is_dropped(key) or (not self.final_norm and key.startswith('norm.'))

    def _convert_state_dict(self, state_dict: Dict[str, torch.Tensor],
                            path: str) -> Dict[str, torch.Tensor]:
        self._adapt_patch_embed(state_dict, path)
        self._adapt_pos_embed(state_dict, path)
        return state_dict

    def _adapt_patch_embed(self, state_dict: Dict[str, torch.Tensor], path: str) -> None:
        key = 'patch_embed.proj.weight'
        weight = state_dict.get(key)
        kernel = tuple(self.vit.patch_embed.proj.weight.shape[-2:])
        if weight is None or weight.dim() != 4 or tuple(weight.shape[-2:]) == kernel:
            return
        state_dict[key] = resample_patch_embed(weight, list(kernel), **_RESAMPLE)
        print_log(f'DeiT: resampled the patch embedding of {path} from '
                  f'{tuple(weight.shape[-2:])} to {kernel} patches', logger='current')

    def _adapt_pos_embed(self, state_dict: Dict[str, torch.Tensor], path: str) -> None:
        pos_embed = state_dict.get('pos_embed')
        if pos_embed is None or pos_embed.dim() != 3:
            return
        num_patches = pos_embed.shape[1] - 1  # the first entry belongs to the CLS token
        side = math.isqrt(num_patches)
        if side * side != num_patches:
            raise ValueError(f'`pretrained` file {path}: pos_embed has {num_patches} patch '
                             'positions, which is not a square grid')
        new_grid = tuple(self.vit.patch_embed.grid_size)
        if new_grid == (side, side):
            return
        state_dict['pos_embed'] = resample_abs_pos_embed(
            pos_embed, new_size=list(new_grid), old_size=[side, side], num_prefix_tokens=1,
            **_RESAMPLE)
        print_log(f'DeiT: resampled the position embedding of {path} from a {side}x{side} to '
                  f'a {new_grid[0]}x{new_grid[1]} grid', logger='current')

    def _forward_tokens(self, x: torch.Tensor,
                        indices: Sequence[int]) -> Tuple[List[torch.Tensor], Tuple[int, int]]:
        """One pass through the blocks, up to the last wanted one.

        Returns the tokens ``(B, 1 + h * w, C)`` after each block in ``indices`` (the last
        block's normalised if ``final_norm``) and the patch grid ``(h, w)``.
        """
        if x.dim() != 4:
            raise ValueError(f'DeiT expects images (B, C, H, W), got shape {tuple(x.shape)}')
        height, width = x.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f'DeiT: input size {height}x{width} is not a multiple of the patch size '
                f'{self.patch_size}; resize or pad the images (e.g. size_divisor in the data '
                'preprocessor)')
        vit = self.vit
        # The steps of timm's forward_features, split so that intermediate tokens can be kept.
        x = vit.patch_embed(x)  # (B, h, w, C): dynamic_img_size defers the flattening
        grid = (x.shape[1], x.shape[2])
        x = vit_pos_embed(vit, x)
        x = vit.norm_pre(vit.patch_drop(x))
        tokens = []
        for i, block in enumerate(vit.blocks[:max(indices) + 1]):
            x = block(x)
            if i == self.num_layers - 1:
                x = vit.norm(x)  # an Identity when final_norm is False
            if i in indices:
                tokens.append(x)
        return tokens, grid

    def forward(self, x: torch.Tensor) -> Tuple[FeatureOutput, ...]:
        """Extract features.

        Args:
            x (torch.Tensor): Images ``(B, 3, H, W)``, H and W multiples of the patch size.

        Returns:
            tuple: ``out_type='embedding'``: ``(forward_embedding(x),)``. ``'featmap'``: one
            entry per ``out_indices`` block, in block order: the patch map
            ``(B, C, H / p, W / p)``, or ``[patch_map, cls_token (B, C)]`` when
            ``output_cls_token`` (as mmseg's VisionTransformer).
        """
        if self.out_type == 'embedding':
            return (self.forward_embedding(x), )
        tokens, (h, w) = self._forward_tokens(x, self.out_indices)
        outs = []
        for t in tokens:
            batch, _, channels = t.shape
            patch_map = t[:, 1:].reshape(batch, h, w, channels).permute(0, 3, 1, 2)
            outs.append([patch_map, t[:, 0]] if self.output_cls_token else patch_map)
        return tuple(outs)

    def forward_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The image embedding: the last block's CLS token, after the final norm (if
        ``final_norm``).

        It equals timm's ``forward_head(forward_features(x), pre_logits=True)``.

        Args:
            x (torch.Tensor): Images ``(B, 3, H, W)``.

        Returns:
            torch.Tensor: ``(B, C)``.
        """
        tokens, _ = self._forward_tokens(x, (self.num_layers - 1, ))
        return tokens[0][:, 0]
