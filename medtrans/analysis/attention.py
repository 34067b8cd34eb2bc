"""Self-attention of ViT backbones for analysis: CLS attention maps and mean attention distance.

Training runs timm's fused ``scaled_dot_product_attention``, which never forms the attention
matrix. :class:`AttentionRecorder` leaves that path as it is: a forward pre-hook on each chosen
block's attention module receives the tokens the module is given and recomputes the softmax
weights from them with the module's own ``qkv``, norms and scale, for the analysis only.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

__all__ = ['AttentionRecorder', 'vit_of', 'cls_attention_maps', 'keep_attention_mass',
           'mean_attention_distance', 'attention_distances', 'dataset_attention_distances']


def vit_of(backbone: nn.Module) -> nn.Module:
    """The timm ``VisionTransformer`` of a medtrans ViT backbone (or the model itself)."""
    vit = getattr(backbone, 'inner', backbone)
    if not (hasattr(vit, 'blocks') and hasattr(vit, 'patch_embed')):
        raise TypeError(f'{type(backbone).__name__} is not a ViT backbone (no timm '
                        'VisionTransformer with blocks and patch_embed); attention analyses '
                        'need one, e.g. medtrans.DeiT.')
    return vit


def _weights(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax attention weights (B, heads, N, N) of a timm ``Attention`` given its input."""
    batch, tokens, _ = x.shape
    qkv = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim)
    q, k, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    return ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)


class AttentionRecorder:
    """Record the attention weights of some blocks of a ViT while it runs forward.

    Use as a context manager around forward passes of the model; ``weights[i]`` then holds the
    (B, heads, N, N) attention of block ``i`` (N = prefix tokens + patches) of the last forward,
    detached, on the model's device, or what ``reduce`` makes of it (which keeps memory small
    when only a statistic is wanted: 12 blocks of (16, 6, 1025, 1025) weights are 4.8 GB).

    Args:
        backbone (nn.Module): A medtrans ViT backbone or a timm ``VisionTransformer``.
        blocks (Sequence[int], optional): Block indices (negative from the end). Defaults to all.
        reduce (Callable, optional): Applied to each block's weights as they are computed.
            Defaults to None (keep the weights).
    """

    def __init__(self, backbone: nn.Module, blocks: Optional[Sequence[int]] = None,
                 reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> None:
        self.vit = vit_of(backbone)
        count = len(self.vit.blocks)
        chosen = range(count) if blocks is None else blocks
        self.blocks = sorted({b % count for b in chosen})
        self.reduce = reduce
        self.weights: Dict[int, torch.Tensor] = {}
        self._handles: List = []

    def __enter__(self) -> 'AttentionRecorder':
        for index in self.blocks:
            def hook(module, args, index=index):
                with torch.no_grad():
                    weights = _weights(module, args[0])
                    self.weights[index] = weights if self.reduce is None else self.reduce(weights)
            self._handles.append(self.vit.blocks[index].attn.register_forward_pre_hook(hook))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def _forward(backbone: nn.Module, images: torch.Tensor) -> None:
    """Run the backbone as the model runs it (its embedding), or a bare timm ViT."""
    if hasattr(backbone, 'forward_embedding'):
        backbone.forward_embedding(images)
    else:
        backbone.forward_features(images)


def _grid(vit: nn.Module, image_size: Tuple[int, int]) -> Tuple[int, int]:
    patch = vit.patch_embed.patch_size
    return image_size[0] // patch[0], image_size[1] // patch[1]


@torch.no_grad()
def cls_attention_maps(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The last block's CLS-token attention over the patches, per head, as images.

    Args:
        backbone (nn.Module): A medtrans ViT backbone (any input size, patch 8 or 16).
        images (Tensor): Normalised inputs (B, 3, H, W) on the backbone's device.

    Returns:
        Tensor: (B, heads, H / patch, W / patch); each head's map sums to at most 1 (the rest of
        the CLS token's attention goes to the prefix tokens).
    """
    vit = vit_of(backbone)
    with AttentionRecorder(vit, blocks=[-1]) as recorder:
        _forward(backbone, images)
    weights = recorder.weights[len(vit.blocks) - 1]
    prefix = vit.num_prefix_tokens
    height, width = _grid(vit, images.shape[-2:])
    return weights[:, :, 0, prefix:].reshape(*weights.shape[:2], height, width)


def keep_attention_mass(maps: torch.Tensor, mass: float = 0.5) -> torch.Tensor:
    """Mask of the largest values of each map that together hold ``mass`` of its total, as in
    DINO's visualisation (the top patches whose attention adds up to 50%).

    Args:
        maps (Tensor): (..., h, w) non-negative maps.
        mass (float): Share of each map's total to keep, in (0, 1]. Defaults to 0.5.

    Returns:
        Tensor: bool (..., h, w).
    """
    if not 0 < mass <= 1:
        raise ValueError(f'keep_attention_mass: mass must lie in (0, 1], got {mass!r}.')
    flat = maps.flatten(-2)
    values, order = flat.sort(dim=-1, descending=True)
    share = values.cumsum(dim=-1) / values.sum(dim=-1, keepdim=True)
    # A value is kept while the mass before it is still short of ``mass``.
    keep_sorted = (share - values / values.sum(dim=-1, keepdim=True)) < mass
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return keep.reshape(maps.shape)


def mean_attention_distance(weights: torch.Tensor, grid: Tuple[int, int], patch_size: int,
                            num_prefix_tokens: int = 1) -> torch.Tensor:
    """Mean attention distance per head, in pixels (Dosovitskiy et al., 2021, Figure 5).

    For each query patch, the distance to every key patch weighted by the attention it pays
    that patch, averaged over the query patches. Prefix tokens (CLS) are left out as queries
    and as keys, and each query's weights over the patches are renormalised to sum to 1.

    Args:
        weights (Tensor): (B, heads, N, N) attention of one block.
        grid (tuple[int, int]): Patch rows and columns (N = prefix + rows * columns).
        patch_size (int): Patch side in pixels.
        num_prefix_tokens (int): Tokens before the patches. Defaults to 1.

    Returns:
        Tensor: (heads,) averaged over the batch.
    """
    rows, cols = grid
    patches = weights[:, :, num_prefix_tokens:, num_prefix_tokens:].double()
    if patches.shape[-1] != rows * cols:
        raise ValueError(f'mean_attention_distance: {patches.shape[-1]} patch tokens for a '
                         f'{rows}x{cols} grid.')
    patches = patches / patches.sum(dim=-1, keepdim=True)
    yy, xx = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing='ij')
    centres = torch.stack([yy.flatten(), xx.flatten()], dim=1).double().to(weights.device)
    distance = torch.cdist(centres, centres) * patch_size
    return (patches * distance).sum(dim=-1).mean(dim=(0, 2)).float()


@torch.no_grad()
def attention_distances(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Mean attention distance of every block and head of a ViT on a batch of images.

    Returns:
        Tensor: (blocks, heads), in pixels, averaged over the batch.
    """
    vit = vit_of(backbone)
    grid = _grid(vit, images.shape[-2:])
    patch = vit.patch_embed.patch_size[0]
    with AttentionRecorder(vit, reduce=lambda weights: mean_attention_distance(
            weights, grid, patch, vit.num_prefix_tokens)) as recorder:
        _forward(backbone, images)
    return torch.stack([recorder.weights[i] for i in recorder.blocks])


@torch.no_grad()
def dataset_attention_distances(model: nn.Module, dataloader, num_images: int = 512,
                                progress: bool = True) -> Tuple[torch.Tensor, int]:
    """Mean attention distance per block and head over the first images of a dataloader.

    Args:
        model (nn.Module): A model whose ``backbone`` is a medtrans ViT, with its data
            preprocessor (from ``medtrans.apis.init_model``).
        dataloader (Iterable): Batches as the model's ``test_step`` takes them.
        num_images (int): Images averaged over (fewer if the split is smaller). Defaults to 512.
        progress (bool): Show a progress bar with an ETA. Defaults to True.

    Returns:
        tuple: ((blocks, heads) tensor in pixels, the number of images used).
    """
    from mmengine.utils import ProgressBar

    total, seen = None, 0
    bar = ProgressBar(num_images) if progress else None
    for batch in dataloader:
        inputs = model.data_preprocessor(batch, False)['inputs'][:num_images - seen]
        distances = attention_distances(model.backbone, inputs).double()
        total = distances * len(inputs) if total is None else total + distances * len(inputs)
        seen += len(inputs)
        if bar is not None:
            for _ in range(len(inputs)):
                bar.update()
        if seen >= num_images:
            break
    if not seen:
        raise ValueError('dataset_attention_distances: the dataloader gave no images.')
    return (total / seen).float(), seen
