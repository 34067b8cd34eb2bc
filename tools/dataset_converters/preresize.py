"""Write pre-resized copies of a config's large images, which its datasets then read instead.

    python tools/dataset_converters/preresize.py CONFIG --short-side S [--data-root DIR]
        [--cache-dir DIR] [--jpeg-quality 95] [--splits train val test] [--workers N]

Every image of the config's train/val/test datasets (and the masks of those that train) whose
shorter side is above S gets a copy with shorter side S in ``<data_root>/.preresized/`` (or
``--cache-dir``, which the datasets' ``preresized`` argument must then name), recorded in its
``manifest.json``. A rerun converts only the files that changed. Choose S as the largest size
the runs resize to first, e.g. 512 for the study's segmentation and 256 for its classification
recipe. The rules (interpolation, formats, when a copy is read, scoring at the original size)
are in ``medtrans/datasets/preresize.py``; datasets read from DICOM or HDF5 files have nothing
to copy here (CBIS-DDSM: convert to PNG first, ``cbis_ddsm_to_png.py``).
"""
import argparse
import copy
import os
import os.path as osp
import sys
import time
from collections import Counter
from typing import Dict, List, Tuple

from medtrans.apis.cli import add_config_args, load_config, retarget_options


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Write pre-resized copies of a config's images, which its datasets read "
        'instead when present.')
    add_config_args(parser)
    parser.add_argument('--short-side', type=int, required=True,
                        help='shorter side of the copies, in pixels')
    parser.add_argument('--cache-dir',
                        help='the cache folder (default: DATA_ROOT/.preresized, where the '
                        'datasets look)')
    parser.add_argument('--jpeg-quality', type=int, default=95,
                        help='quality of the JPEG copies of JPEG images (default: 95)')
    parser.add_argument('--splits', nargs='+', default=['train', 'val', 'test'],
                        help='splits whose files to copy, as in <split>_dataloader '
                        '(default: train val test)')
    parser.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1),
                        help='processes converting in parallel; 0 converts in this process '
                        '(default: up to 4)')
    return parser.parse_args()


def config_sources(cfg, splits) -> Dict[str, Tuple[List[Tuple[str, str]], List[Tuple[str,
                                                                                    str]]]]:
    """data_root -> ((path, kind) sources, (image, mask) pairs) of the config's datasets."""
    from mmengine.registry import DefaultScope

    from medtrans.datasets.check import leaf_dataset_cfgs
    from medtrans.datasets.preresize import reads_preresized
    from medtrans.datasets.segmentation import SplitSegDataset
    from medtrans.registry import DATASETS

    scope = cfg.get('default_scope') or 'medtrans'
    by_root: Dict[str, Tuple[list, list]] = {}
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader or not loader.get('dataset'):
            continue
        for leaf in leaf_dataset_cfgs(loader['dataset']):
            with DefaultScope.overwrite_default_scope(scope):
                if not reads_preresized(leaf['type']):
                    raise SystemExit(f'{split}_dataloader: dataset type {leaf["type"]!r} does not '
                                     'read pre-resized copies (a medtrans classification or '
                                     'segmentation dataset does).')
                built = dict(copy.deepcopy(leaf), pipeline=[], preresized=False,
                             split_file=None)
                dataset = DATASETS.build(built)
            dataset.full_init()
            masks = isinstance(dataset, SplitSegDataset) and not dataset.test_mode
            root = osp.normpath(osp.abspath(dataset.data_root))
            sources, pairs = by_root.setdefault(root, ([], []))
            for idx in range(len(dataset)):
                info = dataset.get_data_info(idx)
                if info.get('img_path'):
                    sources.append((info['img_path'], 'image'))
                if masks and info.get('seg_map_path'):
                    sources.append((info['seg_map_path'], 'mask'))
                    pairs.append((info['img_path'], info['seg_map_path']))
    return by_root


def main() -> int:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, **retarget_options(args))
    from medtrans.datasets.preresize import build_cache

    by_root = config_sources(cfg, args.splits)
    if not by_root:
        raise SystemExit(f'{args.config}: no dataset in the splits {args.splits}.')
    if args.cache_dir and len(by_root) > 1:
        raise SystemExit(f'--cache-dir names one folder, but the config reads {len(by_root)} '
                         f'data roots ({", ".join(sorted(by_root))}); omit it.')
    start = time.perf_counter()
    total: Counter = Counter()
    for root, (sources, pairs) in sorted(by_root.items()):
        total += build_cache(root, sources, args.short_side, folder=args.cache_dir,
                             jpeg_quality=args.jpeg_quality, workers=args.workers, pairs=pairs,
                             log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f'Pre-resized in {time.perf_counter() - start:.1f} s: '
          + ', '.join(f'{n} {outcome}' for outcome, n in sorted(total.items())) + '.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
