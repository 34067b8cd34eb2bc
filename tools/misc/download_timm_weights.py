"""Save the study's timm ImageNet weights as local files, once, on a machine with internet.

    python tools/misc/download_timm_weights.py OUT_DIR [--models NAME [NAME ...]]

Each model's state dict is written as OUT_DIR/<architecture>.<tag>.safetensors and listed in
OUT_DIR/SHA256SUMS (the format of `sha256sum`; medtrans verifies a file against it before
loading it, and `cd OUT_DIR && sha256sum -c SHA256SUMS` checks a copy by hand). Files already
present with a matching checksum are kept. Configs then point `pretrained` at these files;
nothing is downloaded at run time.
"""
import argparse
import os
import sys
from typing import List, Optional

from medtrans.models.utils import MANIFEST_NAME, STUDY_TIMM_WEIGHTS, save_timm_weights


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Download timm ImageNet weights into local .safetensors files with a '
        'SHA-256 manifest.')
    parser.add_argument('out_dir', help='folder of the weight files (created)')
    parser.add_argument('--models', nargs='+', default=list(STUDY_TIMM_WEIGHTS),
                        metavar='NAME',
                        help='timm names with their pretrained tag. Default: the study\'s '
                        f'{", ".join(STUDY_TIMM_WEIGHTS)}')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if os.environ.get('HF_HUB_OFFLINE', '').lower() in ('1', 'true', 'yes', 'on'):
        sys.exit('HF_HUB_OFFLINE is set, but this tool downloads weights: run it without '
                 'HF_HUB_OFFLINE on a machine with internet access, then copy OUT_DIR.')
    os.makedirs(args.out_dir, exist_ok=True)
    for name in args.models:
        saved = save_timm_weights(name, args.out_dir)
        action = 'saved' if saved.downloaded else 'already present, checksum matches'
        print(f'{name}: {action}: {saved.path} (sha256 {saved.sha256})')
    print(f'Checksums: {os.path.join(args.out_dir, MANIFEST_NAME)}. Set `pretrained` in the '
          'configs to these files.')


if __name__ == '__main__':
    main()
