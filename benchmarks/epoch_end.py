"""What an epoch end costs in MMEngine's ``IterBasedTrainLoop`` and in medtrans's
``ResumableIterBasedTrainLoop`` (the base of the DINO configs' ``IterBasedEpochsTrainLoop``).

Both loops draw the batches of a dataloader of their own (``DefaultSampler``, shuffled, persistent
workers as the shipped configs; tiny samples, so that only the epoch transition costs) through
their own iterator, alternately run after run; the time per epoch is the whole draw's time
over the number of epochs. Then the study's DINO runs are sized: 300 epochs, each with the 2 s
sleep that MMEngine adds per epoch end, and the iterations of an epoch at the total batch of
256 (training split sizes of ../shared/docs/paper-settings.md). The classification and
segmentation configs draw from an ``InfiniteSampler``, whose epochs never end: no pause to
remove.

Usage: python benchmarks/epoch_end.py [--epochs 5] [--batches 4] [--workers 2] [--repeats 3]
"""
import argparse
import statistics
import time

import torch
from mmengine.dataset import DefaultSampler
from mmengine.runner.loops import IterBasedTrainLoop
from torch.utils.data import DataLoader

from medtrans.engine import ResumableIterBasedTrainLoop

# Training split sizes (../shared/docs/paper-settings.md: dataset size x training fraction).
TRAIN_SIZES = {
    'APTOS 2019': int(3662 * 0.70),
    'CBIS-DDSM': int(10239 * 0.8),
    'ISIC 2019': int(25331 * 0.8),
    'CheXpert': int(224316 * 0.8),
    'PCam': 262144,
}
MMENGINE_SLEEP_S = 2


def draw_time(loop_type, epochs: int, batches: int, workers: int) -> float:
    dataset = list(range(batches * 4))
    dataloader = DataLoader(
        dataset, batch_size=4, num_workers=workers, persistent_workers=workers > 0,
        sampler=DefaultSampler(dataset, shuffle=True, seed=0))
    loop = loop_type(runner=None, dataloader=dataloader, max_iters=epochs * batches)
    start = time.perf_counter()
    for _ in range(epochs * batches + 1):  # the last draw crosses the last epoch end
        next(loop.dataloader_iterator)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--batches', type=int, default=4, help='batches per epoch')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    times = {IterBasedTrainLoop: [], ResumableIterBasedTrainLoop: []}
    for _ in range(args.repeats):
        for loop_type in times:
            times[loop_type].append(
                draw_time(loop_type, args.epochs, args.batches, args.workers) / args.epochs)
    print(f'{args.epochs} epochs of {args.batches} batches, {args.workers} persistent workers, '
          f'{args.repeats} runs each; seconds per epoch (whole draw / epochs), median '
          '(min-max):')
    for loop_type, values in times.items():
        print(f'  {loop_type.__name__:<28} {statistics.median(values):.4f} '
              f'({min(values):.4f}-{max(values):.4f})')
    print(f'\nMMEngine\'s sleep in a DINO run of 300 epochs: '
          f'{300 * MMENGINE_SLEEP_S / 60:.0f} min, one {MMENGINE_SLEEP_S} s pause per epoch of')
    for name, size in TRAIN_SIZES.items():
        print(f'  {name:<11} {size // 256:>3} iterations ({size} training images, batch 256)')


if __name__ == '__main__':
    main()
