"""Measurement helpers for the scripts in ``benchmarks/``: device-aware timing, FLOP counting,
matmul peaks and the statistics that say whether a difference is above the noise."""
import random
import statistics
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

__all__ = [
    'comparison_lines',
    'synchronize', 'clock', 'flop_counter', 'matmul_peak_flops', 'datasheet_peaks', 'summary',
    'median_ratio_interval', 'split_half_ratio'
]

# Dense (no sparsity) peaks from NVIDIA's datasheets, TFLOP/s; the name is matched against
# torch.cuda.get_device_name().
_DATASHEET_TFLOPS = {
    'H200': {'fp32': 67.0, 'tf32': 494.7, 'bf16': 989.4},
}

aten = torch.ops.aten


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels, so that a clock read after it sees them finished."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` after the work queued on ``device`` has finished."""
    synchronize(device)
    return time.perf_counter()


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args,
                            out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def flop_counter() -> FlopCounterMode:
    """A :class:`FlopCounterMode` that also counts attention on CPU.

    PyTorch's counter knows the CUDA attention kernels but not the CPU one that
    ``scaled_dot_product_attention`` runs there (``_scaled_dot_product_flash_attention_for_cpu``
    and its backward), so a ViT's attention would count as zero FLOPs on CPU.
    """
    return FlopCounterMode(
        display=False,
        custom_mapping={
            aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flop,
        })


def matmul_peak_flops(device: torch.device, n: int = 2048, reps: int = 10,
                      dtype: torch.dtype = torch.float32) -> float:
    """Best FLOP/s of ``reps`` products of two ``n x n`` matrices on ``device``.

    Uses the process's current matmul settings (threads, TF32 switches), as the training step
    does. The best run, not the median, estimates what the hardware can reach.
    """
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    best = float('inf')
    for _ in range(reps):
        start = clock(device)
        torch.mm(a, b)
        best = min(best, clock(device) - start)
    return 2 * n**3 / best


def datasheet_peaks(device: torch.device) -> Optional[Tuple[str, Dict[str, float]]]:
    """The GPU's name and its datasheet dense peaks in FLOP/s, or None if not tabulated."""
    if device.type != 'cuda':
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in _DATASHEET_TFLOPS.items():
        if key in name:
            return name, {precision: tflops * 1e12 for precision, tflops in peaks.items()}
    return None


def summary(times: Sequence[float]) -> Tuple[float, float, float]:
    """(min, median, max) of step times."""
    return min(times), statistics.median(times), max(times)


def median_ratio_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95,
                          resamples: int = 2000, seed: int = 0) -> Tuple[float, float]:
    """Bootstrap interval of ``median(a) / median(b)`` for paired samples (``a[i]`` was timed
    next to ``b[i]``): pairs are resampled together, so drift common to both cancels.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f'expected two non-empty samples of one length, got {len(a)} and '
                         f'{len(b)}')
    rng = random.Random(seed)
    n = len(a)
    ratios: List[float] = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        ratios.append(statistics.median(a[i] for i in idx) /
                      statistics.median(b[i] for i in idx))
    ratios.sort()
    tail = (1 - level) / 2
    return ratios[int(tail * resamples)], ratios[min(resamples - 1, int((1 - tail) * resamples))]


def split_half_ratio(times: Sequence[float], block: int = 2) -> float:
    """A-vs-A noise: the median of one half of the steps over that of the other half.

    The halves are alternate blocks of ``block`` consecutive steps (``block=2``: steps 0, 1, 4,
    5, ... over 2, 3, 6, 7, ...), so that a pattern repeating every ``block`` steps, such as
    which side of a pair runs first, falls in both halves. Both halves ran the same work, so the
    distance from 1 is what noise alone does to a median of this many steps.
    """
    halves = ([t for i, t in enumerate(times) if i // block % 2 == 0],
              [t for i, t in enumerate(times) if i // block % 2 == 1])
    if not halves[1]:
        raise ValueError(f'expected more than {block} step times, got {len(times)}')
    return statistics.median(halves[0]) / statistics.median(halves[1])


def comparison_lines(times: Dict[str, List[float]], flops: Dict[str, int],
                     first_loss: Dict[str, float], steps: int, peak: float,
                     gpu: Optional[Tuple[str, Dict[str, float]]],
                     target: float = 1.05, precision: str = 'fp32',
                     batch: Optional[int] = None) -> List[str]:
    """The side-by-side rows of a Runner-vs-plain benchmark, its ratio, noise and sanity check.

    Args:
        times (dict): Step times per side, ``'Runner'`` and ``'plain'``.
        flops (dict): FLOPs of one step per side.
        first_loss (dict): Each side's loss at the first step (same weights, batch, seed).
        steps (int): Timed steps per side.
        peak (float): This machine's matmul peak in ``precision``, FLOP/s, measured in the
            same run.
        gpu (tuple, optional): :func:`datasheet_peaks` of the device, if listed.
        target (float): The ratio the Runner must stay under. Defaults to 1.05.
        precision (str): The steps' precision, ``'fp32'`` or ``'bf16'``. Defaults to 'fp32'.
        batch (int, optional): Images per step; adds an images/s column. Defaults to None.
    """
    lines = [f'{"":20}{"min s":>8}{"median s":>10}{"max s":>8}{"GFLOP/step":>12}{"GFLOP/s":>9}'
             f'{"of " + precision + " peak":>14}' + (f'{"img/s":>9}' if batch else '')]
    medians = {}
    for side, name in (('Runner', 'MMEngine Runner'), ('plain', 'plain PyTorch')):
        low, med, high = summary(times[side])
        medians[side] = med
        lines.append(f'{name:20}{low:8.3f}{med:10.3f}{high:8.3f}{flops[side] / 1e9:12.2f}'
                     f'{flops[side] / med / 1e9:9.1f}{flops[side] / med / peak:14.1%}'
                     + (f'{batch / med:9.1f}' if batch else ''))
        if gpu is not None:
            shares = ', '.join(f'{flops[side] / med / value:.1%} of {kind}'
                               for kind, value in gpu[1].items())
            lines.append(f'{"":20}datasheet dense peaks of {gpu[0]}: {shares}')
    low, high = median_ratio_interval(times['Runner'], times['plain'])
    half_width = (high - low) / 2
    runner_loss, plain_loss = first_loss['Runner'], first_loss['plain']
    return lines + [
        f'{precision} matmul peak measured in this run (best of 10, 2048^3): '
        f'{peak / 1e9:.1f} GFLOP/s',
        f'Runner / plain median step time: {medians["Runner"] / medians["plain"]:.3f} '
        f'(target <= {target:.2f})',
        f'  95% bootstrap interval over the {steps} pairs: {low:.3f} - {high:.3f} '
        f'(half-width {half_width:.1%}: a 5% difference is '
        f'{"resolved" if half_width < 0.05 else "NOT resolved"} at this noise)',
        f'  A vs A (median of steps 0,1,4,5,... / of steps 2,3,6,7,...): Runner '
        f'{split_half_ratio(times["Runner"]):.3f}, plain {split_half_ratio(times["plain"]):.3f}',
        f'First step from the same weights, batch and seed: loss Runner {runner_loss:.6f}, '
        f'plain {plain_loss:.6f} (relative difference '
        f'{abs(runner_loss - plain_loss) / abs(runner_loss):.1e})',
    ]
