"""A config's recipe (its GPUs x per-GPU batch, hence its total batch and LR) and how a job
reaches that total batch on the GPUs it gets.

The recipe is the config's: the ``NxbM`` of its name (mmseg's convention, e.g. ``4xb64``: 4 GPUs
x 64), checked against the fields the run reads, ``train_dataloader.batch_size`` (M) and
``auto_scale_lr.base_batch_size`` (N x M, the batch its LR is set for); a config whose name
and fields disagree is refused. A name without ``NxbM`` takes the fields: N = base batch / M, or
1 without a base batch.

Hardware changes how the total batch is reached, never the total or the LR (no linear scaling):
a job gets the recipe's GPU count when that many are free (more GPUs go to other jobs), or the
largest divisor of it that fits; the missing factor is gradient accumulation, or, for configs
that refuse accumulation (DINO updates its teacher every iteration), a per-GPU batch that
many times larger. On the CPU a job is one process.
"""
import copy
import re
from dataclasses import dataclass
from typing import Optional

from mmengine.config import Config

from medtrans.apis import prepare_config

__all__ = ['Recipe', 'Placement', 'read_recipe', 'place_recipe', 'accepts_accumulation']

_NAME = re.compile(r'(?:^|_)(\d+)xb(\d+)(?:_|$)')


@dataclass(frozen=True)
class Recipe:
    """A config's recipe: ``gpus`` x ``batch_per_gpu`` x ``accumulate`` = ``total_batch``."""

    gpus: int
    batch_per_gpu: int
    accumulate: int = 1

    @property
    def total_batch(self) -> int:
        return self.gpus * self.batch_per_gpu * self.accumulate


@dataclass(frozen=True)
class Placement:
    """How a job runs a recipe: on ``gpus`` GPUs (0: one CPU process), ``batch_per_gpu`` per
    process, ``accumulate`` iterations per optimizer step."""

    gpus: int
    batch_per_gpu: int
    accumulate: int

    @property
    def processes(self) -> int:
        return max(self.gpus, 1)

    @property
    def total_batch(self) -> int:
        return self.processes * self.batch_per_gpu * self.accumulate


def read_recipe(cfg: Config, config_path: str) -> Recipe:
    """The recipe of a config (module docstring).

    Args:
        cfg (Config): The config as its file holds it.
        config_path (str): Its path (the name may hold ``NxbM``).

    Raises:
        ValueError: No ``train_dataloader.batch_size``, or a name, batch and base batch that
            disagree; the message names the three.
    """
    loader = cfg.get('train_dataloader') or {}
    batch = loader.get('batch_size')
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f'{config_path}: no train_dataloader.batch_size (got {batch!r}); the '
                         'study reads the recipe from it.')
    base = (cfg.get('auto_scale_lr') or {}).get('base_batch_size')
    counts = (cfg.get('optim_wrapper') or {}).get('accumulative_counts') or 1
    name = config_path.replace('\\', '/').rsplit('/', 1)[-1][:-3]
    match = _NAME.search(name)
    if match:
        gpus, named_batch = int(match.group(1)), int(match.group(2))
        if named_batch != batch or (base is not None and base != gpus * named_batch * counts):
            raise ValueError(
                f'{config_path}: the name says {gpus}xb{named_batch} ({gpus} GPU(s) x '
                f'{named_batch}), but train_dataloader.batch_size is {batch} and '
                f'auto_scale_lr.base_batch_size {base}; make them agree, so that the study runs '
                'the recipe the name promises.')
    elif base is not None:
        if base % (batch * counts):
            raise ValueError(f'{config_path}: auto_scale_lr.base_batch_size {base} is not a '
                             f'multiple of train_dataloader.batch_size {batch}'
                             + (f' x accumulation {counts}' if counts > 1 else '')
                             + '; the recipe\'s GPU count is unclear.')
        gpus = base // (batch * counts)
    else:
        gpus = 1
    return Recipe(gpus, batch, counts)


def accepts_accumulation(cfg: Config, config_path: str) -> bool:
    """Whether the training tools accept ``--accumulate`` for this config (they refuse it for
    DINO, whose teacher moves every iteration); asked of
    :func:`medtrans.apis.prepare_config`, which decides it."""
    try:
        prepare_config(copy.deepcopy(cfg), config_path, work_dir='unused', accumulate=2)
    except ValueError:
        return False
    return True


def place_recipe(recipe: Recipe, gpus: Optional[int], accumulates: bool = True) -> Placement:
    """Run a recipe on at most ``gpus`` GPUs at its total batch.

    Args:
        recipe (Recipe): The config's recipe.
        gpus (int, optional): GPUs a job may take; 0 for the CPU (one process); None for the
            recipe's own count (a cluster).
        accumulates (bool): Whether the config accepts gradient accumulation; if not, the
            per-GPU batch grows instead. Defaults to True.

    Returns:
        Placement: With ``total_batch == recipe.total_batch``.
    """
    if gpus is None or gpus >= recipe.gpus:
        return Placement(recipe.gpus, recipe.batch_per_gpu, recipe.accumulate)
    used = 0 if gpus < 1 else max(d for d in range(1, gpus + 1) if recipe.gpus % d == 0)
    factor = recipe.gpus // max(used, 1)
    if accumulates:
        return Placement(used, recipe.batch_per_gpu, recipe.accumulate * factor)
    return Placement(used, recipe.batch_per_gpu * factor, recipe.accumulate)
