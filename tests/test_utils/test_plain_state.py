"""Run state round-trips through a weights-only checkpoint."""
import io
import random
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub

from medtrans.utils.plain_state import from_plain, to_plain


def _weights_only_roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_message_hub_and_rng_roundtrip():
    hub = MessageHub.get_instance('plain_state_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', np.float64(0.25))
    hub.update_info('best_score', np.float32(0.75))
    hub.update_info('eta', np.float64(12.5))  # a float subclass: must not slip through
    hub.update_info('mask', np.arange(4, dtype=np.int16))
    state = OrderedDict(
        message_hub=hub.state_dict(),
        rng=dict(python=random.getstate(), numpy=np.random.get_state()))
    restored = from_plain(_weights_only_roundtrip(to_plain(state)))

    new_hub = MessageHub.get_instance('plain_state_test_restored')
    new_hub.load_state_dict(restored['message_hub'])
    assert new_hub.get_scalar('train/loss').current() == 0.25
    assert new_hub.get_scalar('train/loss').mean() == pytest.approx(0.375)
    assert new_hub.get_info('best_score') == pytest.approx(0.75)
    assert type(new_hub.get_info('eta')) is float
    assert new_hub.get_info('mask').dtype == np.int16
    random.setstate(restored['rng']['python'])
    np.random.set_state(restored['rng']['numpy'])
    expected = (random.random(), np.random.rand())
    random.setstate(state['rng']['python'])
    np.random.set_state(state['rng']['numpy'])
    assert expected == (random.random(), np.random.rand())


def test_unstorable_value_names_its_place():
    with pytest.raises(TypeError, match=r'checkpoint\.meta\.fn'):
        to_plain({'meta': {'fn': len}})
