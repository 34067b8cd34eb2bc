"""Runner overhead and achieved FLOP/s for DeepLabV3-DeiT-S training on this machine.

Prints, side by side from one run:
* the MMEngine Runner's steady-state train-step time (headline config, 512x512, batch 2) vs a
  plain PyTorch loop over the same modules (timm DeiT-S, the CLS-token adapter, ASPP + FCN heads,
  cross-entropy, Adam), and their ratio (target <= 1.10);
* the FLOP/s achieved by a training step, as a fraction of this machine's fp32 matmul peak,
  measured in the same run.

The Runner's step is timed from its first ``before_train_iter`` hook to its last
``after_train_iter`` hook, so it includes data preprocessing, loss parsing, the optimizer wrapper
and every hook, but not the data loading (loaded in the main process between steps, as the plain
loop's batches are prepared before its timing starts).

Usage: python benchmarks/train_step_overhead.py [--iters 8] [--warmup 2]
"""
import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from medtrans.apis import build_runner, prepare_config  # noqa: E402
from medtrans.datasets.synthetic import make_synthetic_isic2018  # noqa: E402

CONFIG = 'configs/deeplab3_deit_s_isic2018.py'
SIZE = 512
BATCH = 2


def matmul_peak_flops(n: int = 4096, reps: int = 5) -> float:
    """Best fp32 matmul FLOP/s over ``reps`` products of two n x n matrices."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float('inf')
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


class _StepStart(Hook):
    priority = 'HIGHEST'

    def __init__(self, clock: dict) -> None:
        self.clock = clock

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.clock['start'] = time.perf_counter()


class _StepEnd(Hook):
    priority = 'LOWEST'

    def __init__(self, clock: dict) -> None:
        self.clock = clock

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.clock['times'].append(time.perf_counter() - self.clock['start'])


def runner_step_times(data_root: str, work_dir: str, iters: int, warmup: int):
    cfg = Config.fromfile(CONFIG)
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for name in loaders:
        cfg[name].dataset.data_root = data_root
        cfg[name].num_workers = 0
        cfg[name].persistent_workers = False
    cfg.train_dataloader.batch_size = BATCH
    cfg.model.backbone.pretrained = None
    cfg.train_cfg.max_iters = warmup + iters
    cfg.train_cfg.val_interval = 10**9
    cfg.default_hooks.checkpoint.interval = 10**9
    cfg.default_hooks.checkpoint.save_last = False
    prepare_config(cfg, CONFIG, work_dir=work_dir)
    runner = build_runner(cfg)
    clock = {'times': []}
    runner.register_hook(_StepStart(clock))
    runner.register_hook(_StepEnd(clock))
    runner.train()
    return clock['times'][warmup:], runner.model


def plain_step(model, optimizer, images, labels):
    """One training step written directly in PyTorch on the same modules."""
    feats = model.neck(model.backbone(images))
    loss = 0.0
    for head, weight in ((model.decode_head, 1.0), (model.auxiliary_head, 0.4)):
        logits = F.interpolate(head(feats), size=labels.shape[-2:], mode='bilinear',
                               align_corners=False)
        loss = loss + weight * F.cross_entropy(logits, labels, ignore_index=255)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def plain_step_times(model, iters: int, warmup: int):
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = torch.randn(BATCH, 3, SIZE, SIZE)
    labels = torch.randint(0, 2, (BATCH, SIZE, SIZE))
    times = []
    for i in range(warmup + iters):
        start = time.perf_counter()
        plain_step(model, optimizer, images, labels)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times, (model, optimizer, images, labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=8)
    parser.add_argument('--warmup', type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_root = os.path.join(tmp, 'isic')
        make_synthetic_isic2018(data_root, num_train=8, num_val=2, size=(SIZE, SIZE), seed=0)
        peak = matmul_peak_flops()
        runner_times, model = runner_step_times(data_root, os.path.join(tmp, 'work'),
                                                args.iters, args.warmup)
        plain_times, step_args = plain_step_times(model, args.iters, args.warmup)
        runner_times_2, _ = runner_step_times(data_root, os.path.join(tmp, 'work2'),
                                              args.iters, args.warmup)
    with FlopCounterMode(display=False) as counter:
        plain_step(*step_args)
    flops = counter.get_total_flops()

    runner_med = statistics.median(runner_times + runner_times_2)
    plain_med = statistics.median(plain_times)
    print(f'\nDeepLabV3-DeiT-S, {SIZE}x{SIZE}, batch {BATCH}, {torch.get_num_threads()} threads, '
          f'{args.iters} timed steps each (median)')
    print(f'{"":28}{"step s":>10}{"GFLOP/s":>10}{"of peak":>10}')
    for name, sec in (('MMEngine Runner', runner_med), ('plain PyTorch loop', plain_med)):
        print(f'{name:28}{sec:10.3f}{flops / sec / 1e9:10.1f}{flops / sec / peak:10.1%}')
    print(f'{"fp32 matmul peak (4096^3)":28}{"":10}{peak / 1e9:10.1f}')
    print(f'training-step FLOPs: {flops / 1e9:.1f} GFLOP')
    print(f'Runner / plain step time ratio: {runner_med / plain_med:.3f} (target <= 1.10)')


if __name__ == '__main__':
    main()
