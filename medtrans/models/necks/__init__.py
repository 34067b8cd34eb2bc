from .cls_token_adapter import ClsTokenAdapter

__all__ = ['ClsTokenAdapter']
