"""Importing medtrans changes nothing outside it but the mmcv._ext stand-in (with mmcv-lite);
register_all_modules() applies, and says so, what the stack needs globally."""
import json
import subprocess
import sys

_PROBE = r'''
import json, os, sys
from mmengine.fileio.backends import registry_utils
from mmengine.runner import CheckpointLoader

def state():
    # MMEngine keeps its checkpoint loaders and file backends in module-level dicts.
    return dict(env=dict(os.environ),
                loaders={k: repr(v) for k, v in CheckpointLoader._schemes.items()},
                backends=sorted(registry_utils.backends),
                mmcv_ext='mmcv._ext' in sys.modules)

before = state()
import medtrans
after_import = state()
from medtrans.setup_env import register_all_modules
register_all_modules(init_default_scope=False)
after_register = state()
print(json.dumps([before, after_import, after_register]))
'''


def test_import_changes_nothing_outside_medtrans():
    env = {'PATH': '/usr/bin:/bin', 'HOME': '/tmp'}  # no HF_HUB_OFFLINE from the test setup
    result = subprocess.run([sys.executable, '-c', _PROBE], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    before, after_import, after_register = json.loads(result.stdout.strip().splitlines()[-1])
    # The one change: with mmcv-lite, mmseg's imports need the stand-in of mmcv's compiled ops.
    assert (before['mmcv_ext'], after_import['mmcv_ext']) == (False, True)
    assert dict(after_import, mmcv_ext=False) == before
    # register_all_modules() routes local checkpoint files to the weights-only loader, adds
    # and adds the atomic backend. The libraries it imports
    # set variables of their own (torch's inductor cache...); medtrans sets none, the Hugging
    # Face hub's offline switch included.
    assert 'HF_HUB_OFFLINE' not in after_register['env']
    assert after_register['loaders'][''] != before['loaders']['']
    assert 'safe_load' in after_register['loaders'][''] or \
        '_mmengine_local_loader' in after_register['loaders']['']
    assert set(after_register['backends']) - set(before['backends']) == {'medtrans_atomic_local'}
