"""Runner overhead of a classification training step (DeiT-S at 224): MMEngine vs plain PyTorch.

Both sides train the model of a shipped classification config (default: DeiT-S on ISIC 2019,
the ImageNet-initialised cell, here from random weights) on the same batches and do the same
computation:

* Runner: the real MMEngine Runner built from the config runs its own ``train()``; one step is
  ``IterBasedTrainLoop.run_iter``: every hook (the LR warm-up's scheduler among them),
  ``model.train_step`` (mmpretrain's ``ClsDataPreprocessor``, ``ImageClassifier.loss``, the
  head's ``CrossEntropyLoss``, loss parsing) and the config's optimizer wrapper
  (``GuardedOptimWrapper``).
* plain: a copy of the Runner's model (same weights, taken when the Runner starts training)
  trained by a loop written in PyTorch: the same data preprocessor call on the Runner's batch,
  the backbone, the neck if any and the head's logits, ``F.cross_entropy`` times the head loss's
  weight, ``backward``, the guard's check (loss and gradients finite, one host sync), an
  optimizer of the same class and parameter groups, ``zero_grad``. No LR scheduler.

The timing harness is ``train_step_overhead.py``'s (interleaved pairs on the same batch,
warm-up, FLOP-counted last warm-up step, CUDA-synchronised clocks, bootstrap interval and A-vs-A
noise, the fp32 matmul peak measured in the same run); see benchmarks/README.md.

Usage: python benchmarks/cls_step.py [--config CFG] [--batch-size N] [--steps 30] [--warmup 3]
    [--no-guard] [--amp] [--compile]
"""
import argparse
import math
import os
import os.path as osp
import tempfile

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from benchlib import datasheet_peaks  # noqa: E402
from mmengine.config import Config  # noqa: E402
from torch import nn  # noqa: E402
from train_step_overhead import (  # noqa: E402
    Interleaved,
    add_step_args,
    for_benchmark,
    measured_peak,
    plain_update,
    report,
    train_interleaved,
)

from medtrans.apis import load_config  # noqa: E402
from medtrans.datasets.isic2019 import ISIC2019_CLASSES  # noqa: E402
from medtrans.testing import write_csv, write_images  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'classification', 'deit-s',
                          'deit-s_in1k_1xb64_plateau_isic2019-224.py')
IMAGE_SIZE = 64  # the synthetic images (the pipeline resizes them to 256, then crops 224)
# The default batch on CPU: a DeiT-S step at 224 is 27.8 GFLOP per image, so the configs' 64
# would take tens of seconds a step on a few CPU cores.
CPU_BATCH_SIZE = 8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='a configs/classification config with an ISIC 2019 dataset and a '
                        'softmax cross-entropy head (default: '
                        'configs/classification/deit-s/deit-s_in1k_1xb64_plateau_isic2019-224.py)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help="images per step (default: the config's, 64, on a GPU; "
                        f'{CPU_BATCH_SIZE} on CPU)')
    add_step_args(parser)
    args = parser.parse_args()
    if args.steps < 4 or args.warmup < 1 or (args.batch_size is not None and args.batch_size < 1):
        parser.error('expected --steps >= 4, --warmup >= 1 and --batch-size >= 1')
    return args


def write_isic2019(root: str, num_images: int) -> None:
    """An ISIC 2019 tree: the ground-truth table (the eight diagnoses with training images in
    turn) and ``num_images`` random-noise JPEGs; no metadata table (no lesion groups)."""
    names = [f'ISIC_{i:07d}' for i in range(num_images)]
    write_csv(osp.join(root, 'ISIC_2019_Training_GroundTruth.csv'),
              [('image', ) + ISIC2019_CLASSES] +
              [(name, *('1' if c == i % 8 else '0' for c in range(len(ISIC2019_CLASSES))))
               for i, name in enumerate(names)],
              line_ending='\r\n')
    write_images(osp.join(root, 'ISIC_2019_Training_Input'), [f'{n}.jpg' for n in names],
                 seed=0, size=IMAGE_SIZE)


def bench_config(args: argparse.Namespace, data_root: str, work_dir: str) -> Config:
    """The config's run on a synthetic ISIC 2019 tree, random initial weights, for exactly the
    benchmarked steps (``train_step_overhead.for_benchmark``).

    The batch size is ``--batch-size``, else the config's on a GPU (where the Runner trains)
    and :data:`CPU_BATCH_SIZE` on CPU. The dataset, its split (train, 80%, split file in the
    work folder) and the pipeline are the config's.
    """
    cfg = load_config(args.config, data_root=data_root, pretrained=None)
    if cfg.train_dataloader.dataset.type not in ('ISIC2019Dataset', 'medtrans.ISIC2019Dataset'):
        raise ValueError(f'{args.config}: the benchmark writes an ISIC 2019 tree; got the '
                         f'dataset {cfg.train_dataloader.dataset.type}')
    if args.batch_size is None and not torch.cuda.is_available():
        args.batch_size = CPU_BATCH_SIZE
    if args.batch_size is not None:
        cfg.train_dataloader.batch_size = args.batch_size
    args.batch_size = cfg.train_dataloader.batch_size
    return for_benchmark(cfg, args, work_dir)


class PlainClsStep:
    """A training step of an mmpretrain ``ImageClassifier`` written in PyTorch.

    It computes what ``model.train_step`` does with the config's optimizer wrapper: the data
    preprocessor, backbone, neck if any, the head's logits, cross-entropy with the labels (the
    batch mean, as mmpretrain's ``CrossEntropyLoss`` with ``avg_factor`` = batch size gives)
    times the loss weight, then :func:`train_step_overhead.plain_update` (``backward``, the
    guard's check, optimizer step, ``zero_grad``).

    Args:
        model (nn.Module): An mmpretrain ``ImageClassifier`` whose head has one softmax
            ``CrossEntropyLoss`` without class weights, and whose data preprocessor has no
            batch augmentation (labels stay hard).
        optimizer (torch.optim.Optimizer): Optimizer over ``model``'s parameters.
        guard (bool): Check the loss and gradients as the guard does.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, guard: bool) -> None:
        loss = getattr(model.head, 'loss_module', None)
        if (type(loss).__name__ != 'CrossEntropyLoss' or loss.use_sigmoid or loss.use_soft
                or loss.class_weight is not None or loss.reduction != 'mean'
                or getattr(model.data_preprocessor, 'batch_augments', None) is not None):
            raise ValueError(
                'the plain loop is written for mmpretrain ImageClassifier models whose head has '
                'one softmax CrossEntropyLoss (mean, no class weights) and no batch '
                f'augmentation; got head {type(model.head).__name__} with loss {loss}')
        self.model = model
        self.loss_weight = loss.loss_weight
        self.optimizer = optimizer
        self.guard = guard
        self.params = [p for group in optimizer.param_groups for p in group['params']]

    def __call__(self, data_batch: dict) -> torch.Tensor:
        """Train on one batch as the dataloader gives it; returns the (detached) loss."""
        data = self.model.data_preprocessor(data_batch, True)
        labels = torch.cat([s.gt_label for s in data['data_samples']])
        feats = self.model.backbone(data['inputs'])
        if self.model.with_neck:
            feats = self.model.neck(feats)
        loss = self.loss_weight * F.cross_entropy(self.model.head(feats), labels)
        return plain_update(loss, self.params, self.optimizer, self.guard)


class ClsInterleaved(Interleaved):
    """``train_step_overhead.Interleaved`` with :class:`PlainClsStep` as the plain side."""

    def make_plain(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> PlainClsStep:
        return PlainClsStep(model, optimizer, self.guard)


def main() -> None:
    args = parse_args()
    args.config = osp.abspath(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        data_root = osp.join(tmp, 'isic2019')
        cfg = bench_config(args, data_root, osp.join(tmp, 'work'))
        args.size = cfg.img_size  # the recipe's crop, for the report
        # Enough images that the run stays within one epoch of the train split (80% of them,
        # stratified, so a little more for rounding per class).
        total = args.warmup + args.steps
        write_isic2019(data_root, math.ceil((total + 1) * args.batch_size / 0.8 * 1.05) + 16)
        guard = cfg.optim_wrapper.get('type', '').startswith('Guarded')
        bench = ClsInterleaved(args.warmup, guard, seed=0, amp=args.amp, compile=args.compile)
        train_interleaved(cfg, bench)
    peak = measured_peak(args, bench.device)
    print(report(args, bench, peak, datasheet_peaks(bench.device)))


if __name__ == '__main__':
    main()
