"""Elastic deformation of a CSAW-S training sample: medtrans's transform vs torchvision's.

``python benchmarks/elastic.py`` deforms a 512x512 colour image and its mask with the CSAW-S
base config's parameters (alpha 1000, sigma 16), alternating between
:class:`medtrans.datasets.transforms.RandomElasticDeform` (field smoothed by OpenCV's separable
Gaussian) and torchvision's ``v2.ElasticTransform`` (dense 2-D Gaussian kernel of
``int(8 sigma + 1)`` taps), on one thread, as a data-loader worker runs it.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.benchlib import median_ratio_interval  # noqa: E402
from medtrans.datasets.transforms import RandomElasticDeform  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=512, help='image side')
    parser.add_argument('--alpha', type=float, default=1000.0)
    parser.add_argument('--sigma', type=float, default=16.0)
    parser.add_argument('--reps', type=int, default=7, help='timed samples per side')
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, (args.size, args.size, 3)).astype(np.uint8)
    mask = (rng.rand(args.size, args.size) > 0.5).astype(np.uint8)
    ours = RandomElasticDeform(prob=1.0, alpha=args.alpha, sigma=args.sigma)
    theirs = v2.ElasticTransform(alpha=args.alpha, sigma=args.sigma)
    sides = {
        'medtrans': lambda: ours(dict(img=img.copy(), gt_seg_map=mask.copy(),
                                      seg_fields=['gt_seg_map'])),
        'torchvision': lambda: theirs((tv_tensors.Image(torch.from_numpy(img).permute(2, 0, 1)),
                                       tv_tensors.Mask(torch.from_numpy(mask)))),
    }
    times = {name: [] for name in sides}
    for run in sides.values():  # warm-up
        run()
    for _ in range(args.reps):
        for name, run in sides.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    print(f'{args.size}x{args.size}, alpha {args.alpha}, sigma {args.sigma}, one thread, '
          f'{args.reps} samples per side')
    for name, values in times.items():
        print(f'  {name:<12} {statistics.median(values) * 1e3:9.1f} ms per sample (median)')
    ratio = statistics.median(times['torchvision']) / statistics.median(times['medtrans'])
    low, high = median_ratio_interval(times['torchvision'], times['medtrans'])
    print(f'  torchvision / medtrans: {ratio:.1f} (95% interval {low:.1f} - {high:.1f})')


if __name__ == '__main__':
    main()
