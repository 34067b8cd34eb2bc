from .checkpoint import load_state_dict_exactly, read_state_dict
from .weight_init import kaiming_init_

__all__ = ['read_state_dict', 'load_state_dict_exactly', 'kaiming_init_']
