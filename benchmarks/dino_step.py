"""Runner overhead of a DINO training step (DeiT-S, 2 global + 6 local crops): MMEngine vs plain
PyTorch.

Both sides train the DINO model of a shipped config (default: DeiT-S on ISIC 2019) on the same
multi-crop batches and do the same computation, except the teacher's entropy, which the Runner's
``DINO.loss`` also computes for its log (one softmax over the teacher's outputs):

* Runner: the real MMEngine Runner built from the config runs its own ``train()``; one step is
  ``IterBasedTrainLoop.run_iter``: every hook (DINOHook's teacher temperature, last-layer
  freezing, per-parameter clipping and teacher EMA; the LR and weight-decay schedulers),
  ``model.train_step`` and the config's optimizer wrapper (``GuardedOptimWrapper``).
* plain: a copy of the Runner's model (same weights, taken when the Runner starts training)
  trained by a loop written in PyTorch as DINO's own ``train_one_epoch``: the LR and weight
  decay of the iteration set on every parameter group, the data preprocessor, the teacher on
  the global crops, the student on the global then the local crops, the DINO loss and centre
  update, ``backward``, the guard's check (one host sync), per-parameter clipping, the last
  layer's gradients dropped in the first epoch, the optimizer step (same class and parameter
  groups), ``zero_grad`` and the teacher's EMA update.

The timing harness is ``train_step_overhead.py``'s (interleaved pairs, warm-up, FLOP-counted
last warm-up step, CUDA-synchronised clocks); see benchmarks/README.md.

Usage: python benchmarks/dino_step.py [--config CFG] [--local-crops 6] [--batch-size 2]
    [--steps 30] [--warmup 3] [--no-guard]
"""
import argparse
import copy
import math
import os
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Tuple

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from benchlib import comparison_lines, datasheet_peaks  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.model import is_model_wrapper  # noqa: E402
from torch import nn  # noqa: E402
from train_step_overhead import (  # noqa: E402
    Interleaved,
    add_step_args,
    for_benchmark,
    measured_peak,
    plain_optimizer,
    precision,
    setting,
    train_interleaved,
)

from medtrans.apis import load_config  # noqa: E402
from medtrans.engine.hooks.dino_hook import teacher_momentum_at, teacher_temp_at  # noqa: E402
from medtrans.testing import make_synthetic_isic2018  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'dino', 'dino_deit-s_in1k_4xb64_300e_isic2019-224-96.py')
IMAGE_SIZE = 256  # the synthetic images the crops are cut from


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='a configs/dino config (default: DeiT-S on ISIC 2019)')
    parser.add_argument('--local-crops', type=int, default=6,
                        help='local crops per image, beside the 2 global ones (default: 6)')
    parser.add_argument('--batch-size', type=int, default=2, help='images per step (default: 2)')
    add_step_args(parser)
    args = parser.parse_args()
    if args.steps < 4 or args.warmup < 1 or args.batch_size < 1 or args.local_crops < 1:
        parser.error('expected --steps >= 4, --warmup >= 1, --batch-size >= 1 and '
                     '--local-crops >= 1')
    return args


def bench_config(args: argparse.Namespace, data_root: str, work_dir: str) -> Config:
    """The config's DINO run on a synthetic ISIC 2018 tree, for exactly the benchmarked steps
    (``train_step_overhead.for_benchmark``; the schedules keep their epochs).

    Changed from the shipped config besides: the dataset (its loading step and DINO's views
    kept), the number of local crops, no ImageNet file, no validation.
    """
    cfg = load_config(args.config, pretrained=None)
    loader = cfg.train_dataloader
    views = loader.dataset.pipeline[1]
    views.num_views[-1] = args.local_crops
    loader.dataset = dict(type='ISIC2018Task1Dataset', data_root=data_root, split='train',
                          pipeline=loader.dataset.pipeline)
    loader.batch_size = args.batch_size
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return for_benchmark(cfg, args, work_dir)


def dino_schedules(cfg: Config, iters_per_epoch: int,
                   max_iters: int) -> Tuple[List[float], List[float]]:
    """DINO's per-iteration LR and weight decay (its ``cosine_scheduler``) for the config's
    settings: linear warm-up then cosine for the LR, cosine for the weight decay."""
    warmup = cfg.warmup_epochs * iters_per_epoch
    total = cfg.max_epochs * iters_per_epoch
    lrs, decays = [], []
    for it in range(max_iters):
        if it < warmup:
            lrs.append(cfg.lr * it / warmup)
        else:
            progress = (it - warmup) / (total - warmup)
            lrs.append(cfg.min_lr + (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress)) / 2)
        decays.append(cfg.weight_decay_end + (cfg.weight_decay - cfg.weight_decay_end) *
                      (1 + math.cos(math.pi * it / total)) / 2)
    return lrs, decays


class PlainDINOStep:
    """A DINO training step written in PyTorch, as DINO's ``train_one_epoch`` runs it.

    Args:
        model (nn.Module): A medtrans ``DINO`` model (its modules are called directly).
        optimizer (torch.optim.Optimizer): Optimizer over the student's parameters.
        guard (bool): Check the loss and gradients as the guard does.
        hook (dict): The config's ``DINOHook`` settings.
        schedules (tuple[list[float], list[float]]): LR and weight decay per iteration.
        iters_per_epoch (int): Iterations per epoch.
        max_iters (int): The run's length (for the teacher momentum).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, guard: bool,
                 hook: dict, schedules: Tuple[List[float], List[float]], iters_per_epoch: int,
                 max_iters: int) -> None:
        self.model = model
        self.optimizer = optimizer
        self.guard = guard
        self.hook = hook
        self.lrs, self.decays = schedules
        self.iters_per_epoch = iters_per_epoch
        self.max_iters = max_iters
        self.params = [p for group in optimizer.param_groups for p in group['params']]
        self.decayed = [group['weight_decay'] > 0 for group in optimizer.param_groups]
        self.last_layer = list(model.head.last_layer.parameters())
        student = [*model.backbone.parameters(), *model.head.parameters()]
        teacher = [*model.teacher['backbone'].parameters(), *model.teacher['head'].parameters()]
        self.ema_pairs = (teacher, student)
        self.iteration = 0

    def __call__(self, data_batch: dict) -> torch.Tensor:
        """Train on one batch as the dataloader gives it; returns the (detached) loss."""
        it, model, hook = self.iteration, self.model, self.hook
        for group, decayed in zip(self.optimizer.param_groups, self.decayed):
            group['lr'] = self.lrs[it]
            if decayed:
                group['weight_decay'] = self.decays[it]
        temp = teacher_temp_at(it, self.iters_per_epoch, hook['warmup_teacher_temp'],
                               hook['teacher_temp'], hook['warmup_teacher_temp_epochs'])
        views = model.data_preprocessor(data_batch, True)['inputs']
        batch = views[0].shape[0]
        with torch.no_grad():
            teacher = model.teacher['head'](
                model.teacher['backbone'].forward_embedding(torch.cat(views[:2])))
        embeddings = [model.backbone.forward_embedding(torch.cat(views[:2])),
                      model.backbone.forward_embedding(torch.cat(views[2:]))]
        student = model.head(torch.cat(embeddings))
        # DINO's loss over the (teacher view, other student view) pairs, then the centre.
        center, loss_module = model.loss_module.center, model.loss_module
        log_p = F.log_softmax(student.view(len(views), batch, -1) / loss_module.student_temp,
                              dim=-1)
        p_teacher = F.softmax((teacher.view(2, batch, -1) - center) / temp, dim=-1)
        cross = -torch.einsum('gbk,vbk->gvb', p_teacher, log_p).mean(dim=-1)
        loss = cross[~torch.eye(2, len(views), dtype=torch.bool, device=cross.device)].mean()
        with torch.no_grad():
            momentum = loss_module.center_momentum
            center.mul_(momentum).add_(teacher.mean(dim=0, keepdim=True), alpha=1 - momentum)
        loss.backward()
        if self.guard:  # one check of loss and gradients, one host sync, as the guard does
            grads = [p.grad for p in self.params if p.grad is not None]
            amax = torch.stack(torch._foreach_norm(grads, float('inf'))).amax()
            if not bool(torch.isfinite(loss.detach() + amax)):
                raise FloatingPointError('plain loop: non-finite loss or gradient')
        grads = [p.grad for p in self.params if p.grad is not None]
        scale = torch.stack(torch._foreach_norm(grads)).add_(1e-6).reciprocal_()
        torch._foreach_mul_(grads, list(scale.mul_(hook['clip_grad']).clamp_(max=1.).unbind()))
        if it < hook['freeze_last_layer_epochs'] * self.iters_per_epoch:
            for param in self.last_layer:
                param.grad = None
        self.optimizer.step()
        self.optimizer.zero_grad()
        with torch.no_grad():
            momentum = teacher_momentum_at(it, self.max_iters, hook['momentum'])
            torch._foreach_mul_(self.ema_pairs[0], momentum)
            torch._foreach_add_(self.ema_pairs[0], self.ema_pairs[1], alpha=1 - momentum)
        self.iteration += 1
        return loss.detach()


class DINOInterleaved(Interleaved):
    """``train_step_overhead.Interleaved`` with :class:`PlainDINOStep` as the plain side."""

    def __init__(self, warmup: int, guard: bool, seed: int, cfg: Config, amp: bool = False,
                 compile: bool = False) -> None:
        super().__init__(warmup, guard, seed, amp=amp, compile=compile)
        self.cfg = cfg

    def setup(self, runner) -> None:
        """Copy the Runner's model, initialised and on its device, for the plain loop."""
        iters_per_epoch = len(runner.train_dataloader)
        if iters_per_epoch <= runner.max_iters:
            raise RuntimeError(f'{iters_per_epoch} batches per epoch for {runner.max_iters} '
                               'steps: an epoch end would fall inside a timed step')
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.device = next(model.parameters()).device
        plain_model = copy.deepcopy(model).train()  # compiled methods bound to the copy
        optimizer = plain_optimizer(runner.optim_wrapper.optimizer, model, plain_model)
        hook = next(h for h in self.cfg.custom_hooks if h['type'] == 'DINOHook')
        schedules = dino_schedules(self.cfg, iters_per_epoch, runner.max_iters)
        self.plain = PlainDINOStep(plain_model, optimizer, self.guard, hook, schedules,
                                   iters_per_epoch, runner.max_iters)


def report(args: argparse.Namespace, cfg: Config, bench: Interleaved, peak: float,
           gpu: Optional[Tuple[str, Dict[str, float]]]) -> str:
    """The printed result: one row per side, the ratio, its noise and the sanity checks."""
    device = bench.device
    where = (torch.cuda.get_device_name(device) if device.type == 'cuda' else
             f'CPU, {torch.get_num_threads()} threads')
    views = cfg.train_dataloader.dataset.pipeline[1]
    sizes = [t[0]['scale'] for t in views.transforms]
    guard = 'NaN guard on both sides' if bench.guard else 'no NaN guard on either side'
    lines = [
        '',
        f'{osp.relpath(args.config, REPO)}: 2 global crops of {sizes[0]} + {args.local_crops} '
        f'local crops of {sizes[-1]}, batch {args.batch_size}, {setting(bench)}, {where}',
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
        # Enough images (90% of them train) that the run stays within one epoch.
        total = args.warmup + args.steps
        num_train = math.ceil(1.25 * (total + 1) * args.batch_size) + 2
        make_synthetic_isic2018(data_root, num_train=num_train, num_val=0,
                                size=(IMAGE_SIZE, IMAGE_SIZE), seed=0)
        cfg = bench_config(args, data_root, osp.join(tmp, 'work'))
        guard = cfg.optim_wrapper.get('type', '').startswith('Guarded')
        bench = DINOInterleaved(args.warmup, guard, seed=0, cfg=cfg, amp=args.amp,
                                compile=args.compile)
        train_interleaved(cfg, bench)
    peak = measured_peak(args, bench.device)
    print(report(args, cfg, bench, peak, datasheet_peaks(bench.device)))


if __name__ == '__main__':
    main()
