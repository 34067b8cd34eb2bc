"""CrashSafeCheckpointHook removes the oldest checkpoint only once the new one is written."""
import glob
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub, MMLogger

from medtrans.engine.hooks import CrashSafeCheckpointHook


class _Runner(SimpleNamespace):
    """What the hook reads of a Runner; ``save_checkpoint`` records the files there while it
    writes."""

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        self.present_while_writing.append(sorted(self._checkpoints()))
        open(osp.join(out_dir, filename), 'w').close()

    def _checkpoints(self):
        return [osp.basename(p) for p in glob.glob(osp.join(self.work_dir, 'iter_*.pth'))]


def _save_three(hook_type, tmp_path, max_keep):
    runner = _Runner(work_dir=str(tmp_path), present_while_writing=[],
                     message_hub=MessageHub(f'hub-{hook_type.__name__}-{max_keep}'),
                     logger=MMLogger.get_instance('test_checkpoint_hook'))
    hook = hook_type(interval=1, by_epoch=False, max_keep_ckpts=max_keep)
    hook.before_train(runner)
    for step in (1, 2, 3):
        hook._save_checkpoint_with_step(runner, step, dict(epoch=0, iter=step))
        hook._save_checkpoint_with_step(runner, step, dict(epoch=0, iter=step))  # a rewrite
    return runner


#: The checkpoints present while each file is written (each step is written, then rewritten).
_PRESENT = {
    1: [[], [1], [1], [2], [2], [3]],
    2: [[], [1], [1], [1, 2], [1, 2], [2, 3]],
}


@pytest.mark.parametrize('max_keep', [1, 2])
def test_old_checkpoint_removed_after_the_new_one_is_written(tmp_path, max_keep):
    runner = _save_three(CrashSafeCheckpointHook, tmp_path, max_keep)
    assert runner.present_while_writing == [[f'iter_{s}.pth' for s in present]
                                            for present in _PRESENT[max_keep]]
    assert sorted(runner._checkpoints()) == [f'iter_{s}.pth' for s in (1, 2, 3)][-max_keep:]
    assert runner.message_hub.get_info('keep_ckpt_ids') == [1, 2, 3][-max_keep:]


def test_mmengine_removes_first(tmp_path):
    # The window this hook closes: MMEngine's hook writes iter_2.pth with no checkpoint left.
    runner = _save_three(CheckpointHook, tmp_path, 1)
    assert runner.present_while_writing[2] == []
