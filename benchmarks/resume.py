"""What ``--resume`` costs at a late iteration: MMEngine's replay of the skipped batches vs the
resumable sampler of the shipped configs.

A shipped classification config (DeiT, random init, APTOS 2019) trains on APTOS-format data
written here (``--images`` fundus-size PNGs, ``--side`` pixels square, smooth noise, which
compresses and decodes like a photograph), with DeiT-Ti at ``--img-size`` so that the CPU spends
its time on the data, as a GPU run does: ``--iters`` iterations, a checkpoint at the last but
one. Then the run is resumed from that checkpoint twice, in turn, from copies of its work
dir:

* **replay**: the same config with MMEngine's ``IterBasedTrainLoop`` and ``InfiniteSampler``,
  which read every skipped batch through the pipeline again (what the configs did before);
* **start**: the config as shipped (``ResumableIterBasedTrainLoop``,
  ``ResumableInfiniteSampler``): the sampler starts at the resumed iteration.

Each resume trains the one remaining iteration; its time is that of ``Runner.train()`` (the
dataset and workers, the checkpoint load, the skip, one step, the last checkpoint). Both build
the same Runner, so the ratio is the cost of the skip. ``--repeats`` alternates the two, each
first in every other round.

Usage: python benchmarks/resume.py [--iters 301] [--images 64] [--side 1024] [--workers 2]
"""
import argparse
import copy
import gc
import os.path as osp
import shutil
import statistics
import tempfile
import time

import numpy as np
from mmengine.config import Config
from mmengine.registry import RUNNERS
from PIL import Image

from medtrans.apis.retarget import retarget
from medtrans.setup_env import register_all_modules

CONFIG = 'configs/classification/deit-s/deit-s_random_1xb64_plateau_aptos2019-224.py'


def write_aptos(root: str, images: int, side: int) -> None:
    """``train.csv`` and ``train_images/<id>.png``: smooth multi-scale noise, every grade."""
    rng = np.random.default_rng(0)
    rows = ['id_code,diagnosis']
    for i in range(images):
        image = np.zeros((side, side, 3), np.float32)
        for cells in (4, 16, 64):
            coarse = rng.random((cells, cells, 3)).astype(np.float32)
            image += np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize(
                (side, side), Image.BICUBIC), np.float32) / 3
        image += rng.normal(0, 4, image.shape)
        name = f'{i:012x}'
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
            osp.join(root, 'train_images', f'{name}.png'))
        rows.append(f'{name},{i % 5}')
    with open(osp.join(root, 'train.csv'), 'w') as f:
        f.write('\n'.join(rows) + '\n')


def build_cfg(args, data_root: str, work_dir: str, replay: bool) -> Config:
    cfg = Config.fromfile(CONFIG)
    retarget(cfg, data_root=data_root, img_size=args.img_size)
    cfg.model.backbone.arch = 'deit-tiny'
    cfg.model.head.in_channels = 192
    cfg.work_dir = work_dir
    cfg.train_dataloader.update(batch_size=args.batch, num_workers=args.workers)
    cfg.train_dataloader.dataset.update(split='all', preresized=False)
    cfg.train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=args.iters,
                         val_interval=10 ** 9)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.param_scheduler = cfg.param_scheduler[:1]  # no validation: no plateau steps
    cfg.default_hooks.checkpoint.update(interval=args.iters - 1, max_keep_ckpts=-1,
                                        save_best=None)
    cfg.default_hooks.logger.interval = 50
    if replay:
        cfg.train_cfg.type = 'IterBasedTrainLoop'
        cfg.train_dataloader.sampler.type = 'InfiniteSampler'
    return cfg


def resume_time(cfg: Config) -> float:
    cfg = copy.deepcopy(cfg)
    cfg.resume = True
    # The previous Runner's persistent workers are shut down when it is collected (seconds, at
    # the dataset's own gc.collect() otherwise): before the clock starts.
    gc.collect()
    runner = RUNNERS.build(cfg)
    start = time.perf_counter()
    runner.train()
    seconds = time.perf_counter() - start
    assert runner.iter == cfg.train_cfg.max_iters
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=301)
    parser.add_argument('--images', type=int, default=64)
    parser.add_argument('--side', type=int, default=1024)
    parser.add_argument('--img-size', type=int, default=32)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=2)
    args = parser.parse_args()
    register_all_modules(init_default_scope=False)
    root = tempfile.mkdtemp(prefix='resume_bench_')
    try:
        data = osp.join(root, 'data')
        shutil.os.makedirs(osp.join(data, 'train_images'))
        write_aptos(data, args.images, args.side)
        trained = osp.join(root, 'trained')
        start = time.perf_counter()
        RUNNERS.build(build_cfg(args, data, trained, replay=False)).train()
        print(f'trained {args.iters} iterations of batch {args.batch} in '
              f'{time.perf_counter() - start:.1f} s')
        checkpoint = f'iter_{args.iters - 1}.pth'
        times = {'replay': [], 'start': []}
        for round_ in range(args.repeats):
            order = ['replay', 'start'] if round_ % 2 == 0 else ['start', 'replay']
            for side in order:
                work_dir = osp.join(root, f'{side}{round_}')
                shutil.os.makedirs(work_dir)
                shutil.copy(osp.join(trained, checkpoint), work_dir)
                times[side].append(resume_time(build_cfg(args, data, work_dir, side == 'replay')))
                shutil.rmtree(work_dir)
        skipped = (args.iters - 1) * args.batch
        print(f'resume at iteration {args.iters - 1} ({skipped} samples skipped, {args.images} '
              f'PNGs of {args.side}x{args.side}, {args.workers} workers), one iteration after:')
        for side, values in times.items():
            print(f'  {side:7s} median {statistics.median(values):6.2f} s  '
                  f'({", ".join(f"{v:.2f}" for v in values)})')
        print(f'  replay / start: '
              f'{statistics.median(times["replay"]) / statistics.median(times["start"]):.1f}x')
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
