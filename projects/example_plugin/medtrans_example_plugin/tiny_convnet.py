"""A tiny CNN backbone with medtrans' backbone interface."""
import torch
from mmengine.model import BaseModule
from torch import nn

from medtrans.registry import MODELS


@MODELS.register_module()
class TinyConvNet(BaseModule):
    """Two stride-2 conv blocks.

    ``forward`` returns a tuple of feature maps, like mmseg/mmpretrain backbones, and
    ``num_features`` + ``forward_embedding`` (the globally pooled last block) make it a
    :class:`medtrans.models.EmbeddingBackbone`, which classification heads, k-NN and DINO read.

    Args:
        in_channels (int): Input channels. Defaults to 3.
        channels (int): Channels of both blocks. Defaults to 16.
    """

    def __init__(self, in_channels: int = 3, channels: int = 16) -> None:
        super().__init__()
        self.num_features = channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.stage = nn.Sequential(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> tuple:
        x = self.stem(x)
        return (x, self.stage(x))

    def forward_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The image embedding ``(B, channels)``: the last block, averaged over space."""
        return self.forward(x)[-1].mean(dim=(2, 3))
