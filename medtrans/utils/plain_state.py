"""Encode run state as tensors and plain containers, so ``torch.load(weights_only=True)`` reads it.

MMEngine's resume checkpoints hold ``HistoryBuffer`` objects and numpy values (message hub, RNG
states); unpickling those needs arbitrary globals. Encoding them as tagged dicts keeps every
checkpoint of a medtrans run loadable without running code.
"""
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

__all__ = ['to_plain', 'from_plain']

_TAG = '__medtrans_type__'
_PRIMITIVES = (str, int, float, bool, type(None), torch.Tensor, torch.Size, torch.dtype,
               torch.device)


def to_plain(obj: Any, path: str = 'checkpoint') -> Any:
    """Return ``obj`` with numpy values and ``HistoryBuffer`` objects replaced by tagged dicts.

    Args:
        obj: A checkpoint or part of one.
        path (str): Where ``obj`` sits in the checkpoint, for error messages.

    Raises:
        TypeError: A value of a type that weights-only loading cannot rebuild.
    """
    if isinstance(obj, np.generic):  # before the primitives: np.float64 subclasses float
        return obj.item()
    if isinstance(obj, _PRIMITIVES):
        return obj
    if isinstance(obj, HistoryBuffer):
        return {
            _TAG: 'HistoryBuffer',
            'max_length': obj.max_length,
            'log_history': torch.from_numpy(np.asarray(obj._log_history, dtype=np.float64)),
            'count_history': torch.from_numpy(np.asarray(obj._count_history, dtype=np.int64)),
        }
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError(f'{path}: numpy arrays of Python objects cannot be stored safely.')
        return {_TAG: 'ndarray', 'data': torch.from_numpy(np.ascontiguousarray(obj))}
    if isinstance(obj, dict):
        items = ((k, to_plain(v, f'{path}.{k}')) for k, v in obj.items())
        return OrderedDict(items) if isinstance(obj, OrderedDict) else dict(items)
    if isinstance(obj, tuple):
        return {_TAG: 'tuple', 'items': [to_plain(v, f'{path}[{i}]') for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [to_plain(v, f'{path}[{i}]') for i, v in enumerate(obj)]
    raise TypeError(f'{path}: a {type(obj).__name__} cannot be stored in a checkpoint that loads '
                    'with weights_only=True; store tensors, numbers, strings and containers.')


def from_plain(obj: Any) -> Any:
    """Invert :func:`to_plain`."""
    if isinstance(obj, dict):
        tag = obj.get(_TAG)
        if tag == 'HistoryBuffer':
            buffer = HistoryBuffer(max_length=obj['max_length'])
            buffer._log_history = obj['log_history'].numpy()
            buffer._count_history = obj['count_history'].numpy()
            return buffer
        if tag == 'ndarray':
            return obj['data'].numpy()
        if tag == 'tuple':
            return tuple(from_plain(v) for v in obj['items'])
        items = ((k, from_plain(v)) for k, v in obj.items())
        return OrderedDict(items) if isinstance(obj, OrderedDict) else dict(items)
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    return obj
