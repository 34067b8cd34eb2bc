"""CrashSafeCheckpointHook removes the oldest checkpoint only once the new one is written."""
import copy
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
        self.written_info[filename] = copy.deepcopy(self.message_hub.runtime_info)

    def _checkpoints(self):
        return [osp.basename(p) for p in glob.glob(osp.join(self.work_dir, 'iter_*.pth'))]


def _save_three(hook_type, tmp_path, max_keep):
    runner = _Runner(work_dir=str(tmp_path), present_while_writing=[], written_info={},
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


class _Killed(BaseException):
    pass


def test_a_run_killed_before_removing_the_old_checkpoint_removes_it_when_resumed(
        tmp_path, monkeypatch):
    logger = MMLogger.get_instance('test_checkpoint_hook_killed')
    runner = _Runner(work_dir=str(tmp_path), present_while_writing=[], written_info={},
                     message_hub=MessageHub('hub-killed'), logger=logger)
    hook = CrashSafeCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=1)
    hook.before_train(runner)
    hook._save_checkpoint_with_step(runner, 1, dict(epoch=0, iter=1))

    def kill(path):
        raise _Killed(path)

    hook.file_backend.remove = kill
    with pytest.raises(_Killed):
        hook._save_checkpoint_with_step(runner, 2, dict(epoch=0, iter=2))
    assert sorted(runner._checkpoints()) == ['iter_1.pth', 'iter_2.pth']

    # A run resumed from iter_2.pth that keeps every checkpoint removes none.
    keeping = _Runner(work_dir=str(tmp_path), logger=logger, message_hub=MessageHub(
        'hub-keeping', runtime_info=copy.deepcopy(runner.written_info['iter_2.pth'])))
    CrashSafeCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=-1).before_train(keeping)
    assert sorted(runner._checkpoints()) == ['iter_1.pth', 'iter_2.pth']
    # Resumed from iter_2.pth: its message hub as it was written.
    resumed = _Runner(work_dir=str(tmp_path), present_while_writing=[], written_info={},
                      message_hub=MessageHub('hub-resumed',
                                             runtime_info=runner.written_info['iter_2.pth']),
                      logger=logger)
    messages = []
    monkeypatch.setattr(logger, 'info', messages.append)
    hook = CrashSafeCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=1)
    hook.before_train(resumed)
    assert runner._checkpoints() == ['iter_2.pth']
    assert messages[-1:] == [f'Removed {tmp_path / "iter_1.pth"}: the interrupted run wrote the '
                        'checkpoint that replaces it, but was killed before removing it.']
    assert resumed.message_hub.get_info('keep_ckpt_ids') == [2]
    hook._save_checkpoint_with_step(resumed, 3, dict(epoch=0, iter=3))
    assert runner._checkpoints() == ['iter_3.pth']
    # iter_3.pth names iter_2.pth, removed once iter_3.pth was written: a run resumed from it
    # finds it gone and says nothing.
    assert resumed.written_info['iter_3.pth'][CrashSafeCheckpointHook.STALE_KEY] == 2
    assert resumed.message_hub.get_info(CrashSafeCheckpointHook.STALE_KEY) is None
    again = _Runner(work_dir=str(tmp_path), message_hub=MessageHub(
        'hub-again', runtime_info=resumed.written_info['iter_3.pth']), logger=logger)
    logged = len(messages)
    CrashSafeCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=1).before_train(again)
    assert runner._checkpoints() == ['iter_3.pth']
    assert not [m for m in messages[logged:] if m.startswith('Removed')]
