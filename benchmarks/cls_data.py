"""Images/s of the classification training pipeline per data-loading worker: medtrans vs
torchvision.

Both sides turn the same ISIC-size JPEG files (default 1024x768 and 6000x4000, quality 90,
generated: smooth multi-scale colour noise with a dark lesion and a little pixel noise, so that
they compress like photographs rather than flat colour) into a 224x224 training tensor:

* medtrans: the ``train_pipeline`` of a shipped classification config (default: DeiT-S on
  ISIC 2019, i.e. ``configs/_base_/datasets/cls_recipe_224.py``), each transform built from the
  config by the ``TRANSFORMS`` registry in scope ``medtrans``: ``LoadImageStrict`` (OpenCV
  decode, BGR), ``Resize`` to 256x256, horizontal and vertical ``RandomFlip``, ``RandomApply``
  of ``ColorJitter`` (0.2, 0.2, 0.1, 0.1) with p=0.8, mmpretrain's ``RandomResizedCrop`` to 224
  (area 0.8-1.2) and ``PackInputs``, on the sample dict the dataset gives.
* torchvision: ``torchvision.transforms`` (v1) on PIL images doing the same work: PIL
  ``open`` + ``convert('RGB')``, ``Resize((256, 256))``, ``RandomHorizontalFlip``,
  ``RandomVerticalFlip``, ``RandomApply([ColorJitter(0.2, 0.2, 0.1, 0.1)], p=0.8)``,
  ``RandomResizedCrop(224, scale=(0.8, 1.2))`` and ``PILToTensor``.

One process, threads as in a data-loading worker (OpenCV's from the config's ``env_cfg``, one
PyTorch thread, as PyTorch's workers set). The sides alternate image by image on the same file
(each side first in every other pair), so that load from other processes falls on both alike and
the page cache serves both (a warm-up pass over the files reads them first). Every transform is
timed on its own, so the first one (decoding) is reported apart from the rest.

Where the recipe sets ``LoadImageStrict``'s ``reduce_jpeg_to`` (libjpeg's DCT scaling in OpenCV;
the shipped recipe does, to the resize), PIL decodes in draft mode to the same size
(``Image.draft('RGB', (N, N))``, the same DCT scaling), so both sides still do the same work.
``--reduce-jpeg-to N`` is a what-if that sets another N on both sides.

``--cache-side N`` adds a third side: the medtrans pipeline reading the pre-resized copies
that ``medtrans.datasets.preresize.build_cache`` writes with shorter side N (what the datasets
read once ``tools/dataset_converters/preresize.py`` has run); the copies are made before timing.

Usage: python benchmarks/cls_data.py [--config CFG] [--sizes 1024x768 6000x4000] [--files 4]
    [--images 40] [--quality 90] [--reduce-jpeg-to N] [--cache-side N]
"""
import argparse
import os
import os.path as osp
import random
import shutil
import statistics
import tempfile
import time
from typing import Callable, Dict, List, Sequence, Tuple

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from benchlib import median_ratio_interval, split_half_ratio  # noqa: E402
from PIL import Image  # noqa: E402

from medtrans.apis import load_config  # noqa: E402
from medtrans.datasets.preresize import DEFAULT_FOLDER, build_cache  # noqa: E402
from medtrans.registry import TRANSFORMS  # noqa: E402
from medtrans.setup_env import register_all_modules  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'classification', 'deit-s',
                          'deit-s_in1k_1xb64_plateau_isic2019-224.py')
# The issue's: medtrans at least 1.5x torchvision's images/s, 5x with the cache.
TARGETS = {'medtrans': 1.5, 'medtrans + cache': 5.0}

Stage = Tuple[str, Callable]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='a classification config whose train_dataloader has the pipeline '
                        '(default: configs/classification/deit-s/'
                        'deit-s_in1k_1xb64_plateau_isic2019-224.py)')
    parser.add_argument('--sizes', nargs='+', default=['1024x768', '6000x4000'],
                        help='JPEG sizes, WIDTHxHEIGHT (default: 1024x768 6000x4000)')
    parser.add_argument('--files', type=int, default=4,
                        help='distinct JPEG files per size (default: 4)')
    parser.add_argument('--images', type=int, default=40,
                        help='timed images per side and size, cycling over the files '
                        '(default: 40)')
    parser.add_argument('--quality', type=int, default=90, help='JPEG quality (default: 90)')
    parser.add_argument('--reduce-jpeg-to', type=int, default=None,
                        help="what-if: LoadImageStrict's reduce_jpeg_to and PIL's draft mode to "
                        'this size on both sides (default: the config as shipped)')
    parser.add_argument('--cache-side', type=int, default=None,
                        help='add a side reading pre-resized copies with this shorter side '
                        '(default: no such side)')
    args = parser.parse_args()
    try:
        args.sizes = [tuple(int(v) for v in s.lower().split('x')) for s in args.sizes]
    except ValueError:
        parser.error(f'--sizes: expected WIDTHxHEIGHT, got {args.sizes}')
    if (args.files < 1 or args.images < 4 or not 1 <= args.quality <= 100
            or any(len(s) != 2 or min(s) < 256 for s in args.sizes)):
        parser.error('expected --files >= 1, --images >= 4, 1 <= --quality <= 100 and sizes of '
                     'at least 256x256')
    return args


def write_jpeg(path: str, size: Tuple[int, int], seed: int, quality: int) -> int:
    """Write a photograph-like ``size`` (width, height) JPEG; returns its size in bytes.

    A skin tone with smooth shading and blotches at three scales, a darker lesion (a soft
    ellipse) and pixel noise of a few levels, like sensor noise: content that compresses like a
    dermoscopy photograph, not like flat colour.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    short = min(width, height)

    def smooth(cell: int, channels: int) -> np.ndarray:
        coarse = rng.standard_normal((height // cell + 2, width // cell + 2, channels),
                                     dtype=np.float32)
        return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).reshape(
            height, width, channels)

    skin = np.array([150, 175, 220], np.float32) * rng.uniform(0.9, 1.05)  # BGR
    img = skin * (1 + 0.06 * smooth(max(4, short // 3), 1))
    for cell, amplitude in ((short // 16, 8.), (max(2, short // 150), 4.)):
        img += amplitude * smooth(max(2, cell), 3)
    # The lesion's weight, drawn at a small size and scaled up (a soft edge, cheaply).
    small = (256 * width // short, 256 * height // short)
    alpha = np.zeros(small[::-1], np.float32)
    centre = (int(small[0] * rng.uniform(0.35, 0.65)), int(small[1] * rng.uniform(0.35, 0.65)))
    axes = (int(256 * rng.uniform(0.2, 0.33)), int(256 * rng.uniform(0.2, 0.33)))
    cv2.ellipse(alpha, centre, axes, rng.uniform(0, 180), 0, 360, 1., -1)
    alpha = cv2.resize(cv2.GaussianBlur(alpha, (0, 0), 2.), (width, height))[..., None]
    lesion = np.array([45, 60, 100], np.float32) + 12 * smooth(max(2, short // 12), 3)
    img += alpha * (lesion - img)
    img += rng.standard_normal(img.shape, dtype=np.float32) * 3.
    np.clip(img, 0, 255, out=img)
    if not cv2.imwrite(path, img.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f'could not write "{path}"')
    return osp.getsize(path)


def medtrans_stages(pipeline_cfg: Sequence[dict], reduce_jpeg_to) -> List[Stage]:
    """The config's pipeline, each transform built by the ``TRANSFORMS`` registry (scope
    medtrans, the default scope set by ``register_all_modules``)."""
    stages = []
    for cfg in pipeline_cfg:
        cfg = dict(cfg)
        if reduce_jpeg_to is not None and cfg['type'] in ('LoadImageStrict',
                                                          'medtrans.LoadImageStrict'):
            cfg['reduce_jpeg_to'] = reduce_jpeg_to
        transform = TRANSFORMS.build(cfg)
        stages.append((type(transform).__name__, transform))
    if stages[0][0] != 'LoadImageStrict':
        raise ValueError(f'expected the pipeline to start with LoadImageStrict, got {stages[0][0]}')
    return stages


def torchvision_stages(pipeline_cfg: Sequence[dict], reduce_jpeg_to) -> List[Stage]:
    """The torchvision v1 / PIL pipeline doing the recipe's work, with the recipe's numbers."""
    by_type = {cfg['type'].split('.')[-1]: cfg for cfg in pipeline_cfg}
    resize = tuple(by_type['Resize']['scale'])[::-1]  # MMCV's (w, h) -> torchvision's (h, w)
    jitter = by_type['RandomApply']['transforms'][0]
    crop = by_type['RandomResizedCrop']

    def load(path: str) -> Image.Image:
        img = Image.open(path)
        if reduce_jpeg_to is not None:
            img.draft('RGB', (reduce_jpeg_to, reduce_jpeg_to))
        return img.convert('RGB')

    return [
        ('PIL open + convert', load),
        ('Resize', T.Resize(resize)),
        ('RandomHorizontalFlip', T.RandomHorizontalFlip()),
        ('RandomVerticalFlip', T.RandomVerticalFlip()),
        ('RandomApply(ColorJitter)', T.RandomApply(
            [T.ColorJitter(jitter['brightness'], jitter['contrast'], jitter['saturation'],
                           jitter['hue'])], p=by_type['RandomApply']['prob'])),
        ('RandomResizedCrop', T.RandomResizedCrop(crop['scale'],
                                                  scale=tuple(crop['crop_ratio_range']))),
        ('PILToTensor', T.PILToTensor()),
    ]


def run_stages(stages: List[Stage], data) -> Tuple[float, List[float], object]:
    """Run the stages on ``data``; returns the total time, the time of each stage and the
    output."""
    times = []
    start = now = time.perf_counter()
    for _, transform in stages:
        data = transform(data)
        if data is None:
            raise RuntimeError('a transform dropped the sample')
        end = time.perf_counter()
        times.append(end - now)
        now = end
    return now - start, times, data


def measure(paths: Dict[str, List[str]], images: int,
            sides: Dict[str, List[Stage]]) -> Dict[str, dict]:
    """Time the sides image by image, each on its files (``paths[side]``): one untimed pass
    over the files (page cache, first calls; the sides' tensors checked to have one shape and
    dtype), then ``images`` rounds cycling over them, the sides' order reversed in every other
    round."""
    names = list(sides)
    results = {name: dict(total=[], stages=[]) for name in names}

    def one(name: str, index: int):
        path = paths[name][index % len(paths[name])]
        data = (dict(img_path=path, gt_label=0, sample_id=osp.basename(path), sample_idx=index)
                if name.startswith('medtrans') else path)
        return run_stages(sides[name], data)

    for index in range(len(paths['torchvision'])):
        outputs = {name: one(name, index)[2] for name in names}
        tensors = {name: out['inputs'] if isinstance(out, dict) else out
                   for name, out in outputs.items()}
        shapes = {(tuple(t.shape), t.dtype) for t in tensors.values()}
        if len(shapes) != 1:
            raise RuntimeError(f'the sides give different tensors: {shapes}')
    for index in range(images):
        for name in (names if index % 2 == 0 else names[::-1]):
            total, stages, _ = one(name, index)
            results[name]['total'].append(total)
            results[name]['stages'].append(stages)
    return results


def report_size(size: Tuple[int, int], mean_bytes: float, files: int, images: int,
                results: Dict[str, dict], sides: Dict[str, List[Stage]]) -> List[str]:
    width, height = size
    lines = [
        '',
        f'{width}x{height} JPEG ({files} files, mean {mean_bytes / 1e6:.2f} MB): {images} timed '
        'images per side, interleaved image by image (each side first in every other pair)',
        f'{"":20}{"img/s":>8}{"img/s":>8}{"ms/img":>9}{"ms/img":>9}{"decode ms":>11}'
        f'{"rest ms":>9}',
        f'{"":20}{"median":>8}{"best":>8}{"median":>9}{"min":>9}{"median":>11}{"median":>9}',
    ]
    labels = {'medtrans': 'medtrans (config)', 'torchvision': 'torchvision / PIL',
              'medtrans + cache': 'medtrans + cache'}
    for name, res in results.items():
        med, low = statistics.median(res['total']), min(res['total'])
        decode = statistics.median(s[0] for s in res['stages'])
        rest = statistics.median(t - s[0] for t, s in zip(res['total'], res['stages']))
        lines.append(f'{labels[name]:20}{1 / med:8.1f}{1 / low:8.1f}{med * 1e3:9.2f}'
                     f'{low * 1e3:9.2f}{decode * 1e3:11.2f}{rest * 1e3:9.2f}')
    theirs = results['torchvision']['total']
    for name in (n for n in results if n in TARGETS):
        ours = results[name]['total']
        ratio = statistics.median(theirs) / statistics.median(ours)
        low, high = median_ratio_interval(theirs, ours)
        lines += [
            f'{name} / torchvision images/s (ratio of median times): {ratio:.3f} '
            f'(target >= {TARGETS[name]})',
            f'  95% bootstrap interval over the {images} rounds: {low:.3f} - {high:.3f}; A vs A '
            f'(median of images 0,1,4,5,... / of 2,3,6,7,...): {name} '
            f'{split_half_ratio(ours):.3f}, torchvision {split_half_ratio(theirs):.3f}',
        ]
    lines.append('  median ms per stage:')
    for name, res in results.items():
        parts = ', '.join(f'{stage} {statistics.median(s[i] for s in res["stages"]) * 1e3:.2f}'
                          for i, (stage, _) in enumerate(sides[name]))
        lines.append(f'    {name}: {parts}')
    return lines


def main() -> None:
    args = parse_args()
    args.config = osp.abspath(args.config)
    cfg = load_config(args.config)
    register_all_modules()  # default scope medtrans, as the Runner of the config has
    pipeline_cfg = cfg.train_dataloader.dataset.pipeline
    # A data-loading worker's threads: OpenCV's as the config's env_cfg sets them in the main
    # process (inherited by forked workers), one PyTorch thread as each worker sets.
    cv_threads = cfg.get('env_cfg', {}).get('mp_cfg', {}).get('opencv_num_threads')
    if cv_threads is not None:
        cv2.setNumThreads(cv_threads)
    torch.set_num_threads(1)
    np.random.seed(0)
    random.seed(0)
    torch.manual_seed(0)
    shipped = dict(pipeline_cfg[0]).get('reduce_jpeg_to')
    reduce = shipped if args.reduce_jpeg_to is None else args.reduce_jpeg_to
    sides = {'medtrans': medtrans_stages(pipeline_cfg, reduce),
             'torchvision': torchvision_stages(pipeline_cfg, reduce)}
    if args.cache_side:
        sides['medtrans + cache'] = medtrans_stages(pipeline_cfg, reduce)
    load = sides['medtrans'][0][1]
    if args.reduce_jpeg_to is not None:
        how = (f'WHAT-IF: reduce_jpeg_to={args.reduce_jpeg_to} on LoadImageStrict, PIL draft mode '
               'to the same size; not the shipped recipe')
    else:
        how = 'as shipped' + (f': reduce_jpeg_to={shipped}, and PIL draft mode to the same size'
                              if shipped else '')
    lines = [
        '',
        f'Train pipeline of {osp.relpath(args.config, REPO)} ({how}), one process: OpenCV '
        f'{cv2.getNumThreads()} threads (setNumThreads({cv_threads})), PyTorch '
        f'{torch.get_num_threads()} thread',
        '  medtrans: ' + ' -> '.join(name for name, _ in sides['medtrans']) + f' ({load!r})',
        '  torchvision: ' + ' -> '.join(name for name, _ in sides['torchvision']),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in args.sizes:
            paths = [osp.join(tmp, f'{width}x{height}_{i}.jpg') for i in range(args.files)]
            sizes = [write_jpeg(p, (width, height), seed=i, quality=args.quality)
                     for i, p in enumerate(paths)]
            by_side = {name: paths for name in sides}
            if args.cache_side:
                build_cache(tmp, [(p, 'image') for p in paths], args.cache_side,
                            log=lambda _: None)
                copies = [osp.join(tmp, DEFAULT_FOLDER, osp.basename(p)) for p in paths]
                by_side['medtrans + cache'] = [c if osp.exists(c) else p
                                               for c, p in zip(copies, paths)]
            results = measure(by_side, args.images, sides)
            lines += report_size((width, height), sum(sizes) / len(sizes), args.files,
                                 args.images, results, sides)
            for path in paths:
                os.remove(path)
            shutil.rmtree(osp.join(tmp, DEFAULT_FOLDER), ignore_errors=True)
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
