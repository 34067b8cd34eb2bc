"""Every private name of another library that medtrans uses, one function each.

Each function says what it reaches, why no public API does it, and the version it was checked
against (mmengine 0.10.7, timm 1.0.31, torch 2.14.1). ``tests/test_utils/test_upstream.py``
checks every one of them against the installed versions, so an upgrade that removes or changes
one fails there, naming the function, rather than deep inside a run.

The objects are taken as arguments (duck-typed), so this module imports only torch and sits in
the lowest layer: ``engine``, ``models``, ``evaluation`` and ``datasets`` all use it.
"""
from typing import Iterator, List, Optional, Sequence, Union

import torch
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    'build_loop_dataloader', 'train_loop_is_config', 'train_loop_built', 'runner_load_from',
    'save_checkpoint_at_step', 'started_dataloader_pass', 'amp_static_loss_scale',
    'accumulative_counts', 'dataset_metainfo', 'vit_pos_embed', 'is_batch_norm',
    'foreach_norm', 'foreach_mul_', 'foreach_add_', 'RUNNER_OVERRIDES', 'BatchNormBase',
    'CHECKPOINT_HOOK_OVERRIDES'
]

#: Protected methods of MMEngine's ``Runner`` that :class:`~medtrans.engine.MedtransRunner`
#: overrides (an override cannot go through a function here). ``Runner.train`` calls
#: ``_init_model_weights()`` before it resumes: MedtransRunner skips it when resuming, so that
#: the ImageNet file named by ``pretrained`` is never read. It calls
#: ``_maybe_compile('train_step')`` to compile the whole training step: MedtransRunner compiles
#: the networks in place instead. No public hook runs at either point. Checked against mmengine
#: 0.10.7.
RUNNER_OVERRIDES = ('_init_model_weights', '_maybe_compile')

#: Protected methods of MMEngine's ``CheckpointHook`` that
#: :class:`~medtrans.engine.hooks.CrashSafeCheckpointHook` overrides. ``_save_checkpoint_with_step``
#: removes the oldest checkpoint (when ``max_keep_ckpts > 0``) before it writes the new one; the
#: override does that bookkeeping itself, calls it with ``max_keep_ckpts=-1`` and removes the old
#: file after the write. Checked against mmengine 0.10.7.
CHECKPOINT_HOOK_OVERRIDES = ('_save_checkpoint_with_step',)


def build_loop_dataloader(runner, dataloader):
    """A loop's dataloader, built from its config as MMEngine's ``BaseLoop.__init__`` does.

    Reaches ``Runner._randomness_cfg`` (the Runner's ``randomness`` argument) for
    ``diff_rank_seed``: the Runner keeps it only there, and ``runner.cfg`` may not hold it (a
    Runner built from arguments). Checked against mmengine 0.10.7.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): A dataloader, returned as it is, or its config.

    Returns:
        DataLoader: The dataloader.
    """
    if not isinstance(dataloader, dict):
        return dataloader
    diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
    return runner.build_dataloader(dataloader, seed=runner.seed, diff_rank_seed=diff_rank_seed)


def train_loop_is_config(runner) -> bool:
    """Whether the Runner's train loop is still its config, not yet built.

    Reaches ``Runner._train_loop``: the public ``runner.train_loop`` (and ``runner.iter``) would
    build the loop, and with it the train dataloader, which a test-only run must not do; MMEngine's
    own ``LoggerHook`` reads the attribute for the same reason. A runner without it (a stand-in)
    counts as built. Checked against mmengine 0.10.7.
    """
    return isinstance(getattr(runner, '_train_loop', None), dict)


def train_loop_built(runner) -> bool:
    """Whether the Runner has built its train loop (so this process may have trained).

    Reaches ``Runner._train_loop`` for the reason :func:`train_loop_is_config` gives; it is
    None without ``train_cfg``, a dict until ``train()`` builds it. Checked against mmengine
    0.10.7.
    """
    loop = getattr(runner, '_train_loop', None)
    return loop is not None and not isinstance(loop, dict)


def runner_load_from(runner) -> Optional[str]:
    """The checkpoint the Runner loads (its ``load_from`` argument), or None.

    Reaches ``Runner._load_from``: the Runner has no public accessor, and ``runner.cfg`` holds the
    value only when the Runner was built from a config. Falls back to ``runner.cfg.load_from``
    for a runner without it (a stand-in). Checked against mmengine 0.10.7.
    """
    load_from = getattr(runner, '_load_from', None)
    if load_from is None and getattr(runner, 'cfg', None) is not None:
        load_from = runner.cfg.get('load_from')
    return None if load_from is None else str(load_from)


def save_checkpoint_at_step(checkpoint_hook, runner, step: int, meta: dict) -> None:
    """Write a ``CheckpointHook``'s checkpoint for ``step`` now.

    Reaches ``CheckpointHook._save_checkpoint_with_step(runner, step, meta)``, which names,
    rotates (``max_keep_ckpts``) and records (``last_checkpoint``) the file as the hook does on
    its own schedule; the hook's public methods save only when its interval or a new best score
    says so. Checked against mmengine 0.10.7.

    Args:
        checkpoint_hook (CheckpointHook): The runner's checkpoint hook.
        runner (Runner): The runner.
        step (int): The epoch or iteration the file is named after.
        meta (dict): The checkpoint's ``meta`` (``epoch``, ``iter``).
    """
    checkpoint_hook._save_checkpoint_with_step(runner, step, meta)


def started_dataloader_pass(loop) -> Iterator:
    """The pass over the training dataloader that MMEngine's ``IterBasedTrainLoop`` started.

    Reaches ``IterBasedTrainLoop.dataloader_iterator._iterator`` (of the private
    ``_InfiniteDataloaderIterator``): the loop's ``__init__`` calls ``iter(dataloader)``, which
    starts the workers and draws the pass's base seed from the global generator, and offers no
    way to iterate otherwise. A loop that iterates its own way continues this pass, so that no
    second first pass shifts the random streams. Checked against mmengine 0.10.7.

    Args:
        loop (IterBasedTrainLoop): The loop, just built.

    Returns:
        Iterator: The dataloader's iterator of the first pass, not yet drawn from.
    """
    return loop.dataloader_iterator._iterator


def amp_static_loss_scale(optim_wrapper) -> Optional[float]:
    """The scale an ``AmpOptimWrapper`` restores at every update, or None (a dynamic scale).

    Reaches ``AmpOptimWrapper._scale_update_param``: a float ``loss_scale`` argument is kept only
    there (passed to ``GradScaler.update`` at each step, which makes the scale static); the
    ``GradScaler`` itself does not tell a static scale from a dynamic one. Checked against
    mmengine 0.10.7.
    """
    return optim_wrapper._scale_update_param


def accumulative_counts(optim_wrapper) -> int:
    """The number of micro-batches an optimizer wrapper accumulates per update.

    Reaches ``OptimWrapper._accumulative_counts`` (the ``accumulative_counts`` argument), which
    has no public accessor. A wrapper without it (not an ``OptimWrapper``) counts 1. Checked
    against mmengine 0.10.7.
    """
    return getattr(optim_wrapper, '_accumulative_counts', 1)


def dataset_metainfo(dataset) -> dict:
    """A dataset's own metainfo dict, which a subclass fills while it loads its annotations.

    Reaches ``BaseDataset._metainfo``: the public ``metainfo`` is a deep copy, and there is no
    setter, so a dataset that reads its classes from the files (a folder per class, a table
    header) records them here, as mmpretrain's ``CustomDataset`` does. Checked against
    mmengine 0.10.7.
    """
    return dataset._metainfo


def vit_pos_embed(vit, x: torch.Tensor) -> torch.Tensor:
    """timm's position step of a ``VisionTransformer``: position embedding and prefix tokens.

    Reaches ``VisionTransformer._pos_embed(x)``, the step of ``forward_features`` between
    ``patch_embed`` and the blocks (under ``dynamic_img_size`` it resamples the embedding to the
    patch grid); the public ``forward_features`` and ``forward_intermediates`` run the blocks
    too. Checked against timm 1.0.31.

    Args:
        vit (VisionTransformer): The timm model.
        x (torch.Tensor): Patch embeddings from ``vit.patch_embed``.

    Returns:
        torch.Tensor: Tokens ``(B, prefix + patches, C)``.
    """
    return vit._pos_embed(x)


def is_batch_norm(module: torch.nn.Module) -> bool:
    """Whether a module is a batch norm of any kind (1d/2d/3d, lazy, SyncBN, MMEngine's).

    Reaches torch's ``torch.nn.modules.batchnorm._BatchNorm``, their only common base; MMEngine
    and mmcv test against it too. Checked against torch 2.14.1.
    """
    return isinstance(module, _BatchNorm)


#: torch's ``_BatchNorm``, the base of every batch norm: the parameters and running statistics,
#: and a ``forward`` (``F.batch_norm``) that leaves the input's dimension to
#: ``_check_input_dim``. :class:`~medtrans.models.utils.CPUSyncBatchNorm` subclasses it, as no
#: public class fits: DDP refuses a CPU module holding an ``nn.SyncBatchNorm`` (subclasses
#: included), and ``BatchNorm1d/2d/3d`` each take inputs of one dimension. Checked against
#: torch 2.14.1.
BatchNormBase = _BatchNorm


def foreach_norm(tensors: Sequence[torch.Tensor],
                 ord: Union[int, float] = 2) -> List[torch.Tensor]:
    """The ``ord``-norm of each tensor, as 0-d tensors, in one multi-tensor kernel.

    Reaches ``torch._foreach_norm``, which torch's own ``clip_grad_norm_`` uses: no public
    function takes a list of tensors (one ``vector_norm`` per tensor launches a kernel per
    parameter). Checked against torch 2.14.1.
    """
    return torch._foreach_norm(tensors, ord)


def foreach_mul_(tensors: Sequence[torch.Tensor],
                 scalars: Union[float, Sequence[torch.Tensor]]) -> None:
    """Multiply each tensor in place by a scalar (one for all, or one 0-d tensor each).

    Reaches ``torch._foreach_mul_``, the multi-tensor op of torch's optimizers, with no public
    twin. Checked against torch 2.14.1.
    """
    torch._foreach_mul_(tensors, scalars)


def foreach_add_(tensors: Sequence[torch.Tensor], others: Sequence[torch.Tensor],
                 alpha: float = 1) -> None:
    """Add ``alpha * other`` to each tensor in place.

    Reaches ``torch._foreach_add_``, the multi-tensor op of torch's optimizers, with no public
    twin. Checked against torch 2.14.1.
    """
    torch._foreach_add_(tensors, others, alpha=alpha)
