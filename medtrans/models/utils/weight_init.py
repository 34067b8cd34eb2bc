"""Random initialisation shared by medtrans models."""
import torch.nn as nn

from medtrans.utils.upstream import is_batch_norm

__all__ = ['kaiming_init_']

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.LayerNorm, nn.GroupNorm)


def kaiming_init_(module: nn.Module, mode: str = 'fan_in') -> None:
    """Kaiming (He et al., 2015) initialisation of every convolution and linear layer in a module.

    Weights are drawn from ``N(0, 2 / fan)`` (``nn.init.kaiming_normal_`` with the ReLU gain);
    biases are set to zero, normalisation layers to weight 1 and bias 0. ``fan_in`` keeps the
    variance of the forward activations constant from layer to layer (He et al., eq. 10), which
    is what a randomly initialised network needs to train; ``fan_out`` keeps that of the
    gradients instead (torchvision's choice for ResNet convolutions).

    Args:
        module (nn.Module): The module whose sub-modules are initialised in place.
        mode (str): ``'fan_in'`` or ``'fan_out'``. Defaults to ``'fan_in'``.
    """
    if mode not in ('fan_in', 'fan_out'):
        raise ValueError(f'mode must be "fan_in" or "fan_out", got {mode!r}')
    for m in module.modules():
        if isinstance(m, _WEIGHTED):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity='relu')
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORMS) or is_batch_norm(m):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
