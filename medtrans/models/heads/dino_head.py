"""DINO's projection head: an MLP to a bottleneck, L2 normalisation, a weight-normalised linear."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from medtrans.registry import MODELS

__all__ = ['DINOHead']


@MODELS.register_module()
class DINOHead(nn.Module):
    """The projection head of DINO, on the backbone's image embedding.

    Paper: `Emerging Properties in Self-Supervised Vision Transformers
    <https://arxiv.org/abs/2104.14294>`_ (DINO).

    ``Linear(C, hidden) - GELU - [Linear(hidden, hidden) - GELU] * (num_layers - 2) -
    Linear(hidden, bottleneck)``, then L2 normalisation, then ``last_layer``, a linear map
    ``bottleneck -> out_channels`` without bias under weight normalisation (PyTorch's
    ``parametrizations.weight_norm``: weight = g * v / ||v|| per output). Its magnitude ``g``
    starts at 1 and, with ``norm_last_layer``, stays fixed (not trained), as DINO's default.
    The MLP's linears are initialised as DINO's (truncated normal, std 0.02, zero biases).

    Args:
        in_channels (int): Width of the backbone's embedding (``num_features``).
        out_channels (int): Output width K. Defaults to 65536.
        hidden_channels (int): Width of the hidden layers. Defaults to 2048.
        bottleneck_channels (int): Width before the last layer. Defaults to 256.
        num_layers (int): Linear layers of the MLP, at least 1. Defaults to 3.
        norm_last_layer (bool): Keep the last layer's magnitude fixed at 1. Defaults to True.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 65536,
                 hidden_channels: int = 2048,
                 bottleneck_channels: int = 256,
                 num_layers: int = 3,
                 norm_last_layer: bool = True) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f'DINOHead: num_layers must be >= 1, got {num_layers!r}')
        widths = [in_channels] + [hidden_channels] * (num_layers - 1) + [bottleneck_channels]
        layers = []
        for i, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
            if i:
                layers.append(nn.GELU())
            layers.append(nn.Linear(width_in, width_out))
        self.mlp = nn.Sequential(*layers)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=.02)
                nn.init.zeros_(layer.bias)
        self.last_layer = weight_norm(nn.Linear(bottleneck_channels, out_channels, bias=False))
        magnitude = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            magnitude.fill_(1)
        magnitude.requires_grad_(not norm_last_layer)
        self.in_channels = in_channels
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project embeddings.

        Args:
            x (torch.Tensor): Embeddings ``(B, in_channels)``.

        Returns:
            torch.Tensor: ``(B, out_channels)``.
        """
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        return self.last_layer(x)
