"""Encode run state so that ``torch.load(weights_only=True)`` reads it, changing only what it must.

MMEngine's resume checkpoints hold ``HistoryBuffer`` objects and numpy values (message hub, RNG
states); unpickling those needs arbitrary globals. Weights-only loading does rebuild tensors,
``torch.Size``/``dtype``/``device``, numbers, strings, bytes, ``None`` and plain ``dict``,
``OrderedDict``, ``list``, ``tuple`` and ``set`` (checked with torch 2.14), so those are kept as
they are, and stock OpenMMLab tools (``mmseg.apis.init_model``) read ``meta`` unchanged. Only:

* numpy scalars become the equal Python number (or string);
* numpy arrays and ``HistoryBuffer`` objects become dicts tagged ``'__medtrans_type__'``, which
  :func:`from_plain` turns back into the objects.

Other mappings (mmengine's ``ConfigDict``, ``defaultdict``) are stored as plain dicts. Anything
else (``frozenset``, named tuples, functions, ...) is refused when the checkpoint is written,
naming where it sits, rather than when a resume cannot read it back.
"""
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

__all__ = ['to_plain', 'from_plain']

_TAG = '__medtrans_type__'
# Exact types: a subclass (an IntEnum, a str subclass) would be pickled as its own class, which
# weights-only loading refuses.
_BUILTINS = (str, int, float, bool, complex, bytes, type(None))
_TORCH_VALUES = (torch.Tensor, torch.Size, torch.dtype, torch.device)


def to_plain(obj: Any, path: str = 'checkpoint') -> Any:
    """Return ``obj`` with what weights-only loading refuses replaced by loadable values.

    Args:
        obj: A checkpoint or part of one.
        path (str): Where ``obj`` sits in the checkpoint, for error messages.
            Defaults to 'checkpoint'.

    Returns:
        A copy of ``obj``'s containers holding the same values, encoded where needed.

    Raises:
        TypeError: A value that weights-only loading cannot rebuild and that has no encoding.
    """
    if type(obj) in _BUILTINS or isinstance(obj, _TORCH_VALUES):
        return obj
    if isinstance(obj, np.generic):
        value = obj.item()
        if isinstance(value, np.generic):  # longdouble has no exact Python equivalent
            raise TypeError(f'{path}: a numpy {obj.dtype} scalar cannot be stored exactly.')
        return to_plain(value, path)
    if isinstance(obj, HistoryBuffer):
        log_history, count_history = obj.data
        return {
            _TAG: 'HistoryBuffer',
            'max_length': obj.max_length,
            'log_history': to_plain(log_history, f'{path}.log_history'),
            'count_history': to_plain(count_history, f'{path}.count_history'),
        }
    if isinstance(obj, np.ndarray):
        try:
            data = torch.from_numpy(np.ascontiguousarray(obj))
        except TypeError:
            raise TypeError(f'{path}: a numpy array of dtype {obj.dtype} cannot be stored as a '
                            'tensor; store numbers, strings or arrays of numbers.') from None
        return {_TAG: 'ndarray', 'data': data}
    if isinstance(obj, dict):
        # Other mappings (mmengine's ConfigDict in a dataset's metainfo) are stored as dicts.
        items = ((to_plain(k, f'{path} key {k!r}'), to_plain(v, f'{path}.{k}'))
                 for k, v in obj.items())
        return OrderedDict(items) if isinstance(obj, OrderedDict) else dict(items)
    if type(obj) is tuple:
        return tuple(to_plain(v, f'{path}[{i}]') for i, v in enumerate(obj))
    if type(obj) is list:
        return [to_plain(v, f'{path}[{i}]') for i, v in enumerate(obj)]
    if type(obj) is set:
        return {to_plain(v, f'{path} item {v!r}') for v in obj}
    raise TypeError(f'{path}: a {type(obj).__name__} cannot be stored in a checkpoint that loads '
                    'with weights_only=True; store tensors, numbers, strings and plain dicts, '
                    'lists, tuples and sets.')


def from_plain(obj: Any) -> Any:
    """Invert :func:`to_plain` (numpy scalars come back as the equal Python numbers)."""
    if isinstance(obj, dict):
        tag = obj.get(_TAG)
        if tag == 'HistoryBuffer':
            return HistoryBuffer(from_plain(obj['log_history']),
                                 from_plain(obj['count_history']), obj['max_length'])
        if tag == 'ndarray':
            # MMEngine resumes with map_location set to the run's device (a GPU).
            return obj['data'].cpu().numpy()
        return type(obj)((k, from_plain(v)) for k, v in obj.items())
    if type(obj) is tuple:
        return tuple(from_plain(v) for v in obj)
    if type(obj) is list:
        return [from_plain(v) for v in obj]
    return obj  # sets hold no tagged values: those are dicts, which a set cannot hold
