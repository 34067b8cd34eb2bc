from .dino_loss import DINOLoss
from .masked_bce import MaskedBCEWithLogitsLoss

__all__ = ['MaskedBCEWithLogitsLoss', 'DINOLoss']
