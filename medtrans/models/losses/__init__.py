from .masked_bce import MaskedBCEWithLogitsLoss

__all__ = ['MaskedBCEWithLogitsLoss']
