"""Convert CBIS-DDSM's DICOM mammograms to 8-bit PNGs, for faster training.

    python tools/dataset_converters/cbis_ddsm_to_png.py DATA_ROOT [--out-dir DIR]
        [--dicom-dir CBIS-DDSM] [--max-side N] [--workers N]

DATA_ROOT holds TCIA's four case description tables and the DICOM tree (``CBIS-DDSM/``). Every
mammogram the tables name becomes ``<out-dir>/<patient>_<side>_<view>.png`` (default out-dir:
``DATA_ROOT/CBIS-DDSM-png``, where ``CBISDDSMDataset(img_format='png')`` reads them), with the
pixels ``LoadDicom`` gives (see ``medtrans/datasets/transforms/dicom.py`` for the rule), or
shrunk to ``--max-side``.
A thin command line over ``medtrans.datasets.cbis_ddsm.convert_cbis_ddsm_to_png``.
"""
import argparse
import os
import sys
import time

from medtrans.datasets.cbis_ddsm import convert_cbis_ddsm_to_png


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert the CBIS-DDSM mammograms named by the case description tables '
        'from DICOM to 8-bit grey PNG.')
    parser.add_argument('data_root', help='folder holding the four tables and the DICOM tree')
    parser.add_argument('--out-dir', help='output folder (default: DATA_ROOT/CBIS-DDSM-png)')
    parser.add_argument('--dicom-dir', default='CBIS-DDSM',
                        help='the DICOM tree, relative to DATA_ROOT (default: CBIS-DDSM)')
    parser.add_argument('--max-side', type=int,
                        help='shrink larger mammograms (area interpolation, aspect kept) to this '
                        'longer side; default: full size, the exact pixels of LoadDicom')
    parser.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1),
                        help='processes converting in parallel; 0 converts in this process '
                        '(default: up to 4)')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    start = time.perf_counter()
    count = convert_cbis_ddsm_to_png(
        args.data_root, out_dir=args.out_dir, dicom_dir=args.dicom_dir, workers=args.workers,
        max_side=args.max_side, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f'Converted {count} mammograms in {time.perf_counter() - start:.1f} s.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
