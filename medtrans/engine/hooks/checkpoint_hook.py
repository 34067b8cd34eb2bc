"""A checkpoint hook that never leaves a run without a checkpoint."""
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from medtrans.registry import HOOKS
from medtrans.utils.log_filters import not_file_client_notice

__all__ = ['CrashSafeCheckpointHook', 'checkpoint_hook_of']


def checkpoint_hook_of(runner):
    """The runner's ``CheckpointHook`` (any subclass), or None."""
    return next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)


@HOOKS.register_module()
class CrashSafeCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook``, removing the oldest checkpoint only once the new one is
    written.

    With ``max_keep_ckpts``, MMEngine removes the oldest checkpoint before it writes the next.
    With the schedules' ``max_keep_ckpts=1``, a run killed while its new checkpoint is written
    (seconds for a ViT with its optimizer state) is left with none: ``--resume`` would start it
    again from the beginning. This hook keeps MMEngine's bookkeeping (``keep_ckpt_ids`` in the
    message hub, saved in the new checkpoint) and removes the old file after the new one is in
    place, which the atomic backend makes complete; a run killed in between removes it when
    resumed (the new checkpoint names it, :attr:`STALE_KEY`). It also keeps the deprecation
    notices of the ``FileClient`` that MMEngine 0.10 builds and no longer uses out of the run's
    log. Everything else is MMEngine's.
    """

    #: Message hub key of the step whose checkpoint a save removes once it is written; saved
    #: in the new checkpoint, so that a run killed in between removes it when resumed (unless
    #: the resumed run keeps every checkpoint, ``max_keep_ckpts <= 0``).
    STALE_KEY = 'stale_ckpt_id'

    def before_run(self, runner) -> None:
        runner.logger.addFilter(not_file_client_notice)
        super().before_run(runner)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        stale = runner.message_hub.get_info(self.STALE_KEY)
        # Resumed from a checkpoint written just before a kill.
        if stale is not None and self.max_keep_ckpts > 0:
            path = self._remove_checkpoint(stale)
            if path is not None:
                runner.logger.info(f'Removed {path}: the interrupted run wrote the checkpoint '
                                   'that replaces it, but was killed before removing it.')
            runner.message_hub.update_info(self.STALE_KEY, None)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        limit, stale = self.max_keep_ckpts, None
        if limit > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == limit:
                stale = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
            runner.message_hub.update_info(self.STALE_KEY, stale)
        self.max_keep_ckpts = -1  # MMEngine's rotation, done above, would remove first
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
        finally:
            self.max_keep_ckpts = limit
        if stale is not None:
            self._remove_checkpoint(stale)
            runner.message_hub.update_info(self.STALE_KEY, None)

    def _remove_checkpoint(self, step: int):
        """Remove the checkpoint of ``step`` (main process only); its path, or None where
        nothing was removed (absent, or another process)."""
        path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(step))
        if not is_main_process():
            return None
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # DeepSpeed writes folders
            self.file_backend.rmtree(path)
        else:
            return None
        return path
