"""Run state round-trips through a weights-only checkpoint; what loads as it is stays as it is."""
import enum
import io
import pickle
import random
from collections import OrderedDict, namedtuple

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.logging import MessageHub

from medtrans.utils.plain_state import from_plain, to_plain


def _weights_only_roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_values_weights_only_loading_accepts_are_stored_unchanged():
    # What MMEngine puts in ``meta`` (dataset_meta holds tuples) and what optimizers and
    # schedulers hold: stock tools must read these back without any decoding.
    meta = dict(
        epoch=0, iter=12, seed=7, cfg='model = dict()', time='20261129_042410',
        dataset_meta=dict(classes=('background', 'lesion'), palette=[[0, 0, 0], [255, 0, 0]],
                          label_map=None, reduce_zero_label=False))
    state = OrderedDict(
        meta=meta,
        betas=(0.9, 0.999),
        # One-element set: a rebuilt set of several strings may iterate (and pickle) in
        # another order, by the process's string hashing.
        nested=((1, (2, 3)), [4.5, float('inf')], {'a'}),
        shape=torch.Size([2, 3]), dtype=torch.float16, device=torch.device('cpu'),
        other=(1 + 2j, b'\x00\x01', None, True, 2**70),
        tensor=torch.arange(3))
    plain = to_plain(state)
    loaded = _weights_only_roundtrip(plain)
    # pickle.dumps tells a tuple from a list and a bool from an int, which == does not.
    state.pop('tensor'), plain.pop('tensor'), loaded.pop('tensor')
    assert pickle.dumps(plain) == pickle.dumps(state)
    assert pickle.dumps(loaded) == pickle.dumps(state)
    assert pickle.dumps(from_plain(loaded)) == pickle.dumps(state)


def test_rng_states_roundtrip_exactly():
    random.seed(11)
    np.random.seed(11)
    np.random.standard_normal()  # leaves a cached Gaussian: every field of the state is used
    torch.manual_seed(11)
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    restored = from_plain(_weights_only_roundtrip(to_plain(state)))

    assert restored['python'] == state['python']
    assert type(restored['python'][1]) is tuple
    name, keys, pos, has_gauss, cached = restored['numpy']
    assert (name, pos, has_gauss, cached) == (state['numpy'][0], *state['numpy'][2:])
    assert has_gauss == 1
    assert keys.dtype == state['numpy'][1].dtype == np.uint32
    np.testing.assert_array_equal(keys, state['numpy'][1])
    assert torch.equal(restored['torch'], state['torch'])

    draws = []
    for s in (state, restored):
        random.setstate(s['python'])
        np.random.set_state(s['numpy'])
        torch.set_rng_state(s['torch'])
        draws.append((random.random(), np.random.standard_normal(), np.random.rand(),
                      torch.rand(1).item()))
    assert draws[0] == draws[1]


def test_message_hub_roundtrip():
    hub = MessageHub.get_instance('plain_state_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', np.float64(0.25))
    hub.update_info('best_score', np.float32(0.75))
    hub.update_info('eta', np.float64(12.5))  # a float subclass: must not slip through
    hub.update_info('mask', np.arange(4, dtype=np.int16))
    restored = from_plain(_weights_only_roundtrip(to_plain(hub.state_dict())))

    new_hub = MessageHub.get_instance('plain_state_test_restored')
    new_hub.load_state_dict(restored)
    loss = new_hub.get_scalar('train/loss')
    np.testing.assert_array_equal(loss.data[0], [0.5, 0.25])
    np.testing.assert_array_equal(loss.data[1], [1, 1])
    assert type(new_hub.get_info('best_score')) is float
    assert new_hub.get_info('best_score') == float(np.float32(0.75))
    assert type(new_hub.get_info('eta')) is float and new_hub.get_info('eta') == 12.5
    mask = new_hub.get_info('mask')
    assert mask.dtype == np.int16
    np.testing.assert_array_equal(mask, np.arange(4))


def test_numpy_values_and_mappings_are_converted():
    plain = to_plain(ConfigDict(a=np.int64(3), b=(np.float32(0.1), np.bool_(True))))
    assert type(plain) is dict
    assert pickle.dumps(plain) == pickle.dumps({'a': 3, 'b': (float(np.float32(0.1)), True)})
    (key,) = to_plain({np.int64(1): 'x'})
    assert type(key) is int and key == 1


class _Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize('value, kind', [
    (len, 'builtin_function_or_method'),
    (frozenset({1}), 'frozenset'),
    (namedtuple('Point', 'x')(1), 'Point'),
    (_Colour.RED, '_Colour'),
    (np.array([object()]), 'dtype object'),
    (np.array(['a']), 'dtype <U1'),
])
def test_unstorable_value_names_its_place(value, kind):
    with pytest.raises(TypeError, match=rf'checkpoint\.meta\.x\[1\]: .*{kind}'):
        to_plain({'meta': {'x': [0, value]}})
