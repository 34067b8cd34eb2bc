"""Runner overhead and achieved FLOP/s of a segmentation training step: MMEngine vs plain PyTorch.

Both sides train the model of a shipped config (default: the headline DeepLabV3-DeiT-S) on the
same batches and do the same computation:

* Runner: the real MMEngine Runner built from the config runs its own ``train()``; one step is
  ``IterBasedTrainLoop.run_iter``: every hook, ``model.train_step`` (data preprocessor, mmseg
  heads and losses, loss parsing) and the config's optimizer wrapper (``GuardedOptimWrapper``).
* plain: a copy of the Runner's model (same weights, taken when the Runner starts training)
  trained by a loop written in PyTorch: the same data preprocessor call on the Runner's batch, the
  same modules in the same order, the same cross-entropy losses and weights, an optimizer of the
  same class and parameter groups, and the guard's check (loss and gradients finite, checked
  together after ``backward`` with one host sync). ``--no-guard`` removes the guard from both
  sides.

Steps alternate in pairs on the same batch, the Runner first in even pairs and second in odd
ones (Runner, plain, plain, Runner, Runner, ...), so that load from other processes falls on both
sides alike and neither side always follows the data loading or the other. The first
``--warmup`` steps of each side are not timed; the last of them runs under a FLOP counter
(matmuls, convolutions, attention; forward and backward), so each side's FLOP/s come from its
own step. Data loading (in the main process, between steps) is outside
both timings. Every clock read waits for the device (CUDA-correct). The achieved FLOP/s are
given as a share of this machine's fp32 matmul peak, measured in the same run, and on a GPU
with tabulated datasheet peaks also of those.

The noise printed beside the result: a 95% bootstrap interval of the Runner / plain ratio of
median step times (pairs resampled together), and A-vs-A ratios: the median of one half of a
side's steps over that of the other half (alternate blocks of two pairs, so that both halves
hold both orders).

Usage: python benchmarks/train_step_overhead.py [--config CFG] [--size 256] [--batch-size 2]
    [--steps 30] [--warmup 3] [--no-guard]
"""
import argparse
import contextlib
import copy
import math
import os
import os.path as osp
import tempfile
from typing import Callable, Dict, List, Optional, Tuple

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from benchlib import (  # noqa: E402
    clock,
    comparison_lines,
    datasheet_peaks,
    flop_counter,
    matmul_peak_flops,
)
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.model import is_model_wrapper  # noqa: E402
from torch import nn  # noqa: E402

from medtrans.apis import build_runner, load_config, prepare_config  # noqa: E402
from medtrans.testing import make_synthetic_isic2018  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'deeplab3_deit_s_isic2018.py')
GUARD_KEYS = ('on_non_finite', 'max_consecutive_skips')


def add_step_args(parser: argparse.ArgumentParser) -> None:
    """The arguments every train-step benchmark takes: ``--steps``, ``--warmup``,
    ``--no-guard``, ``--amp``, ``--compile``."""
    parser.add_argument('--steps', type=int, default=30,
                        help='timed steps per side (default: 30)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed steps per side before them (default: 3)')
    parser.add_argument('--no-guard', dest='guard', action='store_false',
                        help="train both sides without the NaN guard (the Runner with MMEngine's "
                        'OptimWrapper)')
    parser.add_argument('--amp', action='store_true',
                        help="bfloat16 autocast on both sides (the Runner as tools/train.py's "
                        '--amp sets it); FLOP/s are then shared out of the bf16 matmul peak')
    parser.add_argument('--compile', action='store_true',
                        help="torch.compile on both sides: the Runner as tools/train.py's "
                        "--compile sets it, the plain side's copy of its modules alike")


def precision(bench: 'Interleaved') -> str:
    """How the steps compute, for the reports: ``'fp32'`` or ``'bf16'`` (autocast)."""
    return 'bf16' if bench.amp else 'fp32'


def setting(bench: 'Interleaved') -> str:
    """The steps' precision and compilation, for a report's header."""
    return ('bf16 autocast' if bench.amp else 'fp32') + (', compiled' if bench.compile else
                                                         '')


def measured_peak(args: argparse.Namespace, device: torch.device) -> float:
    """The matmul peak in the steps' precision, measured now (:func:`matmul_peak_flops`)."""
    return matmul_peak_flops(device, dtype=torch.bfloat16 if args.amp else torch.float32)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='an mmseg EncoderDecoder config with cross-entropy heads (default: '
                        'configs/deeplab3_deit_s_isic2018.py)')
    parser.add_argument('--size', type=int, default=256,
                        help="input size (default: 256; the study's is 512)")
    parser.add_argument('--batch-size', type=int, default=2, help='(default: 2)')
    add_step_args(parser)
    args = parser.parse_args()
    if args.steps < 4 or args.warmup < 1 or args.size < 32 or args.batch_size < 1:
        parser.error('expected --steps >= 4, --warmup >= 1, --size >= 32 and --batch-size >= 1')
    return args


def for_benchmark(cfg: Config, args: argparse.Namespace, work_dir: str) -> Config:
    """Make a loaded config train exactly ``--warmup + --steps`` timed iterations.

    Data is loaded in the main process; an iteration-based loop runs that many iterations with
    no validation and no checkpoint (both would fall inside a timed step); with ``--no-guard``
    MMEngine's plain ``OptimWrapper``. The config should be loaded with its data root and
    ``pretrained=None`` (:func:`medtrans.apis.load_config`).
    """
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(name):
            cfg[name].update(num_workers=0, persistent_workers=False)
    total = args.warmup + args.steps
    if cfg.train_cfg.get('type') == 'IterBasedTrainLoop':
        cfg.train_cfg.update(max_iters=total, val_begin=total + 1)
    else:
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=total, val_begin=total + 1)
    cfg.default_hooks.checkpoint.update(interval=total + 1, save_last=False)
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper not in ('OptimWrapper', 'GuardedOptimWrapper'):
        raise ValueError(f'optim_wrapper.type is "{wrapper}"; the plain loop runs in fp32 '
                         'without a loss scaler, so expected "OptimWrapper" or '
                         '"GuardedOptimWrapper".')
    if not args.guard:
        cfg.optim_wrapper.type = 'OptimWrapper'
        for key in GUARD_KEYS:
            cfg.optim_wrapper.pop(key, None)
    return prepare_config(cfg, args.config, work_dir=work_dir, amp=args.amp,
                          compile=args.compile)


def bench_config(args: argparse.Namespace, data_root: str, work_dir: str) -> Config:
    """The config's run on a synthetic ISIC 2018 tree at ``--size`` (``--img-size`` of the
    tools), random initial weights, for exactly the benchmarked steps (:func:`for_benchmark`)."""
    cfg = load_config(args.config, data_root=data_root, pretrained=None, img_size=args.size)
    cfg.train_dataloader.batch_size = args.batch_size
    return for_benchmark(cfg, args, work_dir)


def plain_optimizer(optimizer: torch.optim.Optimizer, model: nn.Module,
                    copy_of_model: nn.Module) -> torch.optim.Optimizer:
    """An optimizer of ``optimizer``'s class and parameter groups (hyper-parameters included)
    over the corresponding parameters of ``copy_of_model``."""
    names = {id(p): name for name, p in model.named_parameters()}
    params = dict(copy_of_model.named_parameters())
    groups = [dict(group, params=[params[names[id(p)]] for p in group['params']])
              for group in optimizer.param_groups]
    return type(optimizer)(groups)


def plain_update(loss: torch.Tensor, params: List[torch.Tensor],
                 optimizer: torch.optim.Optimizer, guard: bool) -> torch.Tensor:
    """The end of a plain step: ``backward``, with ``guard`` the check of
    :class:`medtrans.engine.optimizers.GuardedOptimWrapper` (loss and gradients finite, checked
    together in one host sync), the optimizer step and ``zero_grad``; returns the detached loss.
    """
    loss.backward()
    if guard:  # one check of loss and gradients, one host sync, as the guard does
        grads = [p.grad for p in params if p.grad is not None]
        amax = torch.stack(torch._foreach_norm(grads, float('inf'))).amax()
        if not bool(torch.isfinite(loss.detach() + amax)):
            raise FloatingPointError('plain loop: non-finite loss or gradient')
    optimizer.step()
    optimizer.zero_grad()
    return loss.detach()


class PlainStep:
    """A training step of an mmseg ``EncoderDecoder`` written in PyTorch.

    It computes what ``model.train_step`` does with the config's optimizer wrapper: the data
    preprocessor, backbone, neck, decode head then auxiliary heads, each head's logits resized
    bilinearly to the labels and scored by cross-entropy times its loss weight, the sum,
    ``backward``, the optimizer step and ``zero_grad``. With ``guard``, the check of
    :class:`medtrans.engine.optimizers.GuardedOptimWrapper`: loss and gradients finite, after
    ``backward``, in one host sync.

    Args:
        model (nn.Module): An mmseg ``EncoderDecoder`` whose heads each have one mmseg
            ``CrossEntropyLoss`` (softmax, no class weights) and no pixel sampler.
        optimizer (torch.optim.Optimizer): Optimizer over ``model``'s parameters.
        guard (bool): Check the loss and gradients as the guard does.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, guard: bool) -> None:
        heads = [getattr(model, 'decode_head', None)]
        if getattr(model, 'with_auxiliary_head', False):
            aux = model.auxiliary_head
            heads += list(aux) if isinstance(aux, nn.ModuleList) else [aux]
        for head in heads:
            loss = getattr(head, 'loss_decode', None)
            if (type(loss).__name__ != 'CrossEntropyLoss' or loss.use_sigmoid or loss.use_mask
                    or loss.class_weight is not None or head.sampler is not None):
                raise ValueError(
                    'the plain loop is written for mmseg EncoderDecoder models whose heads each '
                    'have one softmax CrossEntropyLoss without class weights or sampler; got '
                    f'{type(head).__name__} with loss {loss}')
        self.model = model
        self.heads = heads
        self.optimizer = optimizer
        self.guard = guard
        self.params = [p for group in optimizer.param_groups for p in group['params']]

    def __call__(self, data_batch: dict) -> torch.Tensor:
        """Train on one batch as the dataloader gives it; returns the (detached) loss."""
        data = self.model.data_preprocessor(data_batch, True)
        labels = torch.stack([s.gt_sem_seg.data for s in data['data_samples']]).squeeze(1)
        feats = self.model.backbone(data['inputs'])
        if self.model.with_neck:
            feats = self.model.neck(feats)
        losses = []
        for head in self.heads:
            logits = F.interpolate(head(feats), size=labels.shape[-2:], mode='bilinear',
                                   align_corners=head.align_corners)
            if head.loss_decode.avg_non_ignore:
                ce = F.cross_entropy(logits, labels, ignore_index=head.ignore_index)
            else:  # mmseg's default: the mean over all pixels, ignored ones counting as 0
                ce = F.cross_entropy(logits, labels, ignore_index=head.ignore_index,
                                     reduction='none').mean()
            losses.append(head.loss_decode.loss_weight * ce)
        return plain_update(sum(losses), self.params, self.optimizer, self.guard)


class Interleaved:
    """Times the Runner's steps and runs a timed plain step on the same batch next to each:
    after the Runner's step in even pairs, before it in odd ones.

    Driven by two hooks around every Runner iteration (:class:`_IterStart`, :class:`_IterEnd`).
    The first step of both sides starts from the same weights, batch and seed, so their losses
    must agree: a check that both compute the same thing. The plain step is :meth:`make_plain`'s
    (:class:`PlainStep` here; other benchmarks override it for other models).

    Args:
        warmup (int): Untimed steps per side; the last one is FLOP-counted.
        guard (bool): Whether the plain loop does the guard's checks.
        seed (int): Seed set before the first step of each side.
    """

    def __init__(self, warmup: int, guard: bool, seed: int, amp: bool = False,
                 compile: bool = False) -> None:
        self.warmup = warmup
        self.guard = guard
        self.seed = seed
        self.amp = amp
        self.compile = compile
        self.times: Dict[str, List[float]] = {'Runner': [], 'plain': []}
        self.flops: Dict[str, int] = {}
        self.first_loss: Dict[str, float] = {}
        self.device = torch.device('cpu')
        self.plain: Optional[Callable[[dict], torch.Tensor]] = None
        self._counter = None
        self._start = 0.0

    def setup(self, runner) -> None:
        """Copy the Runner's model, initialised and on its device, for the plain loop."""
        if len(runner.train_dataloader) <= runner.max_iters:
            raise RuntimeError(f'{len(runner.train_dataloader)} batches per epoch for '
                               f'{runner.max_iters} steps: an epoch end would fall inside a '
                               'timed step; expected more training images')
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.device = next(model.parameters()).device
        # With --compile, the Runner's compiled methods come along, bound to the copy.
        plain_model = copy.deepcopy(model).train()
        optimizer = plain_optimizer(runner.optim_wrapper.optimizer, model, plain_model)
        self.plain = self.make_plain(plain_model, optimizer)

    def _counting(self):
        """FLOP counting, in eager mode when compiled (a compiled graph hides its operators
        from the counter; the counted step computes the same)."""
        stack = contextlib.ExitStack()
        if self.compile:
            stack.enter_context(torch.compiler.set_stance('force_eager'))
        counter = stack.enter_context(flop_counter())
        return stack, counter

    def make_plain(self, model: nn.Module,
                   optimizer: torch.optim.Optimizer) -> Callable[[dict], torch.Tensor]:
        """The plain step over the copy of the Runner's model and its optimizer: a callable
        that trains on one batch and returns the detached loss. A subclass benchmarking
        another kind of model returns its own."""
        return PlainStep(model, optimizer, self.guard)

    def runner_step_begins(self, step: int, data_batch: dict) -> None:
        if step % 2:
            self._plain_step(step, data_batch)
        if step == 0:
            torch.manual_seed(self.seed)
        if step == self.warmup - 1:
            self._counter = self._counting()
        self._start = clock(self.device)

    def runner_step_ends(self, step: int, data_batch: dict, outputs: dict) -> None:
        elapsed = clock(self.device) - self._start
        if self._counter is not None:
            stack, counter = self._counter
            stack.close()
            self.flops['Runner'] = counter.get_total_flops()
            self._counter = None
        self._record('Runner', step, elapsed, outputs['loss'])
        if not step % 2:
            self._plain_step(step, data_batch)

    def _plain_step(self, step: int, data_batch: dict) -> None:
        if step == 0:
            torch.manual_seed(self.seed)
        counting = step == self.warmup - 1
        stack, counter = self._counting() if counting else (contextlib.ExitStack(), None)
        with stack, torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            start = clock(self.device)
            loss = self.plain(data_batch)
            elapsed = clock(self.device) - start
        if counting:
            self.flops['plain'] = counter.get_total_flops()
        self._record('plain', step, elapsed, loss)

    def _record(self, side: str, step: int, elapsed: float, loss: torch.Tensor) -> None:
        if step == 0:
            self.first_loss[side] = float(loss.detach())
        if step >= self.warmup:
            self.times[side].append(elapsed)


class _IterStart(Hook):
    """First hook of every train iteration (registered with the highest priority)."""

    def __init__(self, bench: Interleaved) -> None:
        self.bench = bench

    def before_train(self, runner) -> None:
        self.bench.setup(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self.bench.runner_step_begins(batch_idx, data_batch)


class _IterEnd(Hook):
    """Last hook of every train iteration (registered last, with the lowest priority)."""

    def __init__(self, bench: Interleaved) -> None:
        self.bench = bench

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.bench.runner_step_ends(batch_idx, data_batch, outputs)


def train_interleaved(cfg: Config, bench: Interleaved) -> None:
    """Build the Runner of ``cfg``, put ``bench``'s timing hooks first and last around every
    iteration, and train."""
    runner = build_runner(cfg)
    # tools/train.py's --compile leaves cfg.compile unset where the compiler is missing.
    bench.compile = bench.compile and bool(cfg.get('compile'))
    start, end = _IterStart(bench), _IterEnd(bench)
    runner.register_hook(start, priority='HIGHEST')
    runner.register_hook(end, priority='LOWEST')
    if runner.hooks[0] is not start or runner.hooks[-1] is not end:
        raise RuntimeError('the timing hooks must be the first and the last of the Runner')
    runner.train()


def report(args: argparse.Namespace, bench: Interleaved, peak: float,
           gpu: Optional[Tuple[str, Dict[str, float]]]) -> str:
    """The printed result: one row per side, the ratio, its noise and the sanity checks."""
    device = bench.device
    if device.type == 'cuda':
        where = (f'{torch.cuda.get_device_name(device)} (TF32 in matmuls '
                 f'{torch.backends.cuda.matmul.allow_tf32}, in cuDNN '
                 f'{torch.backends.cudnn.allow_tf32})')
    else:
        where = f'CPU, {torch.get_num_threads()} threads'
    guard = 'NaN guard on both sides' if bench.guard else 'no NaN guard on either side'
    lines = [
        '',
        f'{osp.relpath(args.config, REPO)}: {args.size}x{args.size}, batch {args.batch_size}, '
        f'{setting(bench)}, {where}',
        f'{args.steps} timed steps per side after {args.warmup} warm-up steps, interleaved '
        f'(each side first in every other pair); {guard}',
    ]
    lines += comparison_lines(bench.times, bench.flops, bench.first_loss, args.steps, peak, gpu,
                              precision=precision(bench), batch=args.batch_size)
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    args.config = osp.abspath(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        data_root = osp.join(tmp, 'isic2018')
        # Enough images that the run stays within one epoch: MMEngine's logger also logs at
        # the end of each epoch, which on a real dataset comes every few hundred steps.
        total = args.warmup + args.steps
        num_train = math.ceil(1.25 * (total + 1) * args.batch_size) + 2
        make_synthetic_isic2018(data_root, num_train=num_train, num_val=0,
                                size=(args.size, args.size), seed=0)
        cfg = bench_config(args, data_root, osp.join(tmp, 'work'))
        guard = cfg.optim_wrapper.get('type', '').startswith('Guarded')
        bench = Interleaved(args.warmup, guard, seed=0, amp=args.amp, compile=args.compile)
        train_interleaved(cfg, bench)
    peak = measured_peak(args, bench.device)
    print(report(args, bench, peak, datasheet_peaks(bench.device)))


if __name__ == '__main__':
    main()
