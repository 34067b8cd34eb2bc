"""A DeiT-S training step the way timm's training script runs one: the reference beside which
``benchmarks/gpu.sh`` puts the medtrans Runner's images/s and MFU.

timm's ``deit_small_patch16_224`` (random weights, the ISIC 2019 classifier's 8 classes), a
fixed random batch already on the device, bf16 autocast around forward and loss, fused AdamW,
``torch.compile`` of the model (``--eager`` to skip it), ``zero_grad(set_to_none=True)``. No data
loading, no logging, no NaN check: the fastest step this model has on this device, so that
the Runner's share of it says what the toolkit costs.

MFU is the step's counted FLOPs (matmuls, convolutions and attention, forward and backward;
:func:`benchlib.flop_counter`, counted on an eager step) per second over the device's bf16
dense peak: the datasheet's for a GPU listed in ``benchlib.py`` (989 TFLOP/s on an H200),
else the bf16 matmul peak measured in the same run.

Usage: python benchmarks/timm_reference.py [--batch-size 256] [--steps 30] [--warmup 10]
    [--eager] [--device cuda]
"""
import argparse
import os
import statistics

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from benchlib import clock, datasheet_peaks, flop_counter, matmul_peak_flops  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch-size', type=int, default=256, help='(default: 256)')
    parser.add_argument('--steps', type=int, default=30, help='timed steps (default: 30)')
    parser.add_argument('--warmup', type=int, default=10,
                        help='untimed steps first, compilation included (default: 10)')
    parser.add_argument('--eager', action='store_true', help='do not compile the model')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='(default: cuda where there is one)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = timm.create_model('deit_small_patch16_224', num_classes=8).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=True)
    forward = model if args.eager else torch.compile(model)
    images = torch.randn(args.batch_size, 3, 224, 224, device=device)
    labels = torch.randint(0, 8, (args.batch_size, ), device=device)

    def step(module) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(module(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with flop_counter() as counter:
        step(model)
    flops = counter.get_total_flops()
    for _ in range(args.warmup):
        step(forward)
    times = []
    for _ in range(args.steps):
        start = clock(device)
        step(forward)
        times.append(clock(device) - start)
    median = statistics.median(times)
    listed = datasheet_peaks(device)
    if listed is not None:
        peak, source = listed[1]['bf16'], f'{listed[0]} datasheet bf16 dense'
    else:
        peak = matmul_peak_flops(device, dtype=torch.bfloat16)
        source = 'bf16 matmul measured in this run (best of 10, 2048^3)'
    where = torch.cuda.get_device_name(device) if device.type == 'cuda' else (
        f'CPU, {torch.get_num_threads()} threads')
    print(f'timm deit_small_patch16_224, batch {args.batch_size} at 224, bf16 autocast, fused '
          f'AdamW, {"eager" if args.eager else "compiled"}, {where}')
    print(f'{args.steps} timed steps after {args.warmup}: median {median * 1e3:.1f} ms '
          f'(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}), '
          f'{args.batch_size / median:.0f} img/s')
    print(f'{flops / 1e9:.1f} GFLOP/step, {flops / median / 1e12:.2f} TFLOP/s: MFU '
          f'{flops / median / peak:.1%} of {peak / 1e12:.1f} TFLOP/s ({source})')


if __name__ == '__main__':
    main()
