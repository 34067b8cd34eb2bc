"""Write the synthetic ISIC 2018 Task 1 set that `make demo` trains on.

    python tools/misc/make_demo_data.py OUT_DIR [--num-train N] [--num-val N] [--size S] [--seed S]

Does nothing (and says so) if OUT_DIR already holds a complete set made with the same parameters.
"""
import argparse
import time

from medtrans.testing import is_complete_synthetic_isic2018, make_synthetic_isic2018


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a synthetic lesion-segmentation set in the official ISIC 2018 '
        'Task 1 layout.')
    parser.add_argument('out_dir', help='output folder (created; must be empty or hold an '
                        'earlier generated set)')
    parser.add_argument('--num-train', type=int, default=200,
                        help='images in the training set (divided 90/10 into train/val by the '
                        'dataset). Default: 200')
    parser.add_argument('--num-val', type=int, default=20,
                        help='images in the official validation set. Default: 20')
    parser.add_argument('--num-test', type=int, default=0,
                        help='images in the official test set. Default: 0')
    parser.add_argument('--size', type=int, default=128,
                        help='height and width of the images. Default: 128')
    parser.add_argument('--seed', type=int, default=0, help='seed. Default: 0')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    params = dict(num_train=args.num_train, num_val=args.num_val, num_test=args.num_test,
                  size=(args.size, args.size), seed=args.seed)
    if is_complete_synthetic_isic2018(args.out_dir, **params):
        print(f'{args.out_dir} already holds the synthetic ISIC 2018 set with these parameters '
              f'({params}); nothing to do.')
        return
    start = time.perf_counter()
    manifest = make_synthetic_isic2018(args.out_dir, **params)
    print(f'Wrote {len(manifest["files"])} files of a synthetic ISIC 2018 Task 1 set to '
          f'{args.out_dir} in {time.perf_counter() - start:.1f} s ({params}).')


if __name__ == '__main__':
    main()
