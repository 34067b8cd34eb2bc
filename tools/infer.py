"""Predict on new images: ``python tools/infer.py CONFIG CHECKPOINT INPUT... --out-dir DIR``.

INPUT: image files or folders (searched recursively). No labels are needed. Writes:

* segmentation: each image's mask at its size in the dataset's challenge format (as
  ``tools/test.py --out-dir``: ISIC 2018 ``ISIC_<id>_segmentation.png``, 0/255) and, unless
  ``--no-overlays``, ``overlays/<stem>.jpg`` (the mask over the image, at most
  ``--overlay-size`` pixels on the longer side);
* classification: ``predictions.csv``, each image's class probabilities (as ``tools/test.py
  --out``).

Large images: the model sees what the config's test pipeline makes of them (the study's
configs resize the whole image, e.g. to 512x512, and the mask is resized back). ``--slide``
instead runs the segmentation model over windows of its input size at the image's own
resolution, stride ``--stride`` (default: two thirds of the window), averaging overlaps.

A missing checkpoint or input stops the tool with one message (``--debug`` adds the traceback).
"""
import argparse
import os.path as osp


def parse_args():
    from medtrans.apis.cli import add_config_args, add_debug_arg

    parser = argparse.ArgumentParser(description='Predict on new images with a medtrans model')
    add_config_args(parser)
    parser.add_argument('checkpoint', help='checkpoint file (loaded without executing code)')
    parser.add_argument('inputs', nargs='+', help='image files or folders')
    parser.add_argument('--out-dir', required=True, help='where the outputs go')
    parser.add_argument('--device', default='cpu', help="e.g. 'cuda:0' (default: cpu)")
    parser.add_argument('--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument('--slide', action='store_true',
                        help='segmentation: sliding-window inference at the original size')
    parser.add_argument('--stride', type=int, help='sliding-window stride in pixels')
    parser.add_argument('--no-overlays', dest='overlays', action='store_false',
                        help='segmentation: masks only')
    parser.add_argument('--overlay-size', type=int, default=1024,
                        help='longer side of the overlays in pixels (default: 1024)')
    add_debug_arg(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    from medtrans.apis import (
        ToolRun,
        check_checkpoint,
        infer_to_dir,
        init_model,
        list_images,
        load_config,
        retarget_options,
        sliding_window,
    )

    with ToolRun(args) as run:
        check_checkpoint(args.checkpoint)
        cfg = load_config(args.config, args.cfg_options, **retarget_options(args))
        if args.slide:
            sliding_window(cfg, args.stride)
        images = list_images(args.inputs)
        model = init_model(cfg, args.checkpoint, args.device)
        run.started(cfg)
        written = infer_to_dir(model, images, args.out_dir, batch_size=args.batch_size,
                               overlays=args.overlays, overlay_size=args.overlay_size)
        print(f'{len(images)} images -> {osp.abspath(args.out_dir)}: {written}', flush=True)


if __name__ == '__main__':
    main()
