"""Hook that keeps the datasets' divided splits in the work dir, and holds later runs to them."""
from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.hooks import Hook
from torch.utils.data import DataLoader

from medtrans.datasets.splits import record_splits
from medtrans.registry import HOOKS

__all__ = ['SplitRecordHook']


@HOOKS.register_module()
class SplitRecordHook(Hook):
    """Record each divided split a run reads in ``{work_dir}/splits/``, or check it there.

    Every dataset of the loops a run starts (inside dataset wrappers too) that selects its
    split from a seeded division (:meth:`~medtrans.datasets.splits.SplitRecordMixin.divided_split`,
    e.g. APTOS 2019's train/val/test or ISIC 2018's train/val) has its record at
    ``{work_dir}/splits/<split_record_name>`` (e.g. ``aptos2019_seed0.json``). The main process
    writes it (atomically) if it is absent, or else checks that the dataset's division is the
    recorded one, and raises naming the file and what differs if not; the other processes wait
    for it and raise the same error. This is :func:`~medtrans.datasets.splits.record_splits`, which
    ``tools/check_dataset.py`` uses too.

    The check runs at the start of each loop (``before_train``, ``before_val``,
    ``before_test``), before its first iteration, rather than in ``before_run``: there the
    Runner's public loop properties would build the loops the run does not use (a test run's
    training set). ``before_train`` also covers the validation loop that ``Runner.train`` has
    built, so a training run is checked before it trains. A loop's datasets are those of every
    DataLoader it holds: its ``dataloader`` and, for the k-NN loops, the memory set.
    """

    def __init__(self) -> None:
        self._seen: set = set()  # ids of the datasets already recorded in this run

    def before_train(self, runner) -> None:
        """Record the training set and the validation set that ``Runner.train`` built."""
        self._record(runner, [runner.train_loop, runner.val_loop])

    def before_val(self, runner) -> None:
        """Record the validation set (once: validation repeats during training)."""
        self._record(runner, [runner.val_loop])

    def before_test(self, runner) -> None:
        """Record the test set."""
        self._record(runner, [runner.test_loop])

    def _record(self, runner, loops: list) -> None:
        datasets = [loader.dataset for loop in loops if loop is not None
                    for loader in vars(loop).values() if isinstance(loader, DataLoader)]
        new = [dataset for dataset in datasets if id(dataset) not in self._seen]
        if not new:
            return
        self._seen.update(id(dataset) for dataset in new)
        error = None
        if is_main_process():
            try:
                self._record_main(runner, new)
            except (ValueError, OSError) as err:
                error = err
        # Every process stops on a record that does not fit, not only the main one, which
        # would leave the others waiting for it under launchers that do not kill them.
        message = [None if error is None else str(error)]
        broadcast_object_list(message)
        if error is not None:
            raise error
        if message[0] is not None:
            raise ValueError(message[0])

    @staticmethod
    def _record_main(runner, datasets: list) -> None:
        for path, written in record_splits(datasets, runner.work_dir):
            runner.logger.info(('Wrote the split record ' if written else
                                'The splits match their record ') + path)
