"""What the classifiers look at, as in the study's Figure 4: the image, Grad-CAM of a CNN and the
CLS-token attention of a ViT, side by side.

    python tools/analysis/explain.py IMAGE_OR_FOLDER... --out-dir DIR \
        --cnn CNN_CONFIG CNN_CHECKPOINT --vit VIT_CONFIG VIT_CHECKPOINT

Either model may be left out; a checkpoint ``none`` keeps the config's own initialisation
(ImageNet weights or random). Writes ``<stem>.png`` per image (image | Grad-CAM | attention
averaged over heads | the patches holding ``--mass`` of it) and ``<stem>_heads.png`` (each head),
each panel under its title.
"""
import argparse


def parse_args():
    parser = argparse.ArgumentParser(description='Grad-CAM and ViT attention maps (Figure 4)')
    parser.add_argument('inputs', nargs='+', help='image files or folders')
    parser.add_argument('--out-dir', required=True, help='where the panels go')
    parser.add_argument('--cnn', nargs=2, metavar=('CONFIG', 'CHECKPOINT'),
                        help='a CNN classifier: Grad-CAM of its last stage')
    parser.add_argument('--vit', nargs=2, metavar=('CONFIG', 'CHECKPOINT'),
                        help="a ViT classifier: its last block's CLS attention")
    parser.add_argument('--mass', type=float, default=0.5,
                        help='attention mass kept in the thresholded panel (default: 0.5)')
    parser.add_argument('--device', default='cpu', help="e.g. 'cuda:0' (default: cpu)")
    args = parser.parse_args()
    if not (args.cnn or args.vit):
        parser.error('give --cnn, --vit or both')
    return args


def main():
    args = parse_args()
    from medtrans.analysis.explain import explain_images
    from medtrans.apis import init_model, list_images

    models = {}
    for name in ('cnn', 'vit'):
        spec = getattr(args, name)
        if spec:
            config, checkpoint = spec
            models[name] = init_model(config, None if checkpoint.lower() == 'none'
                                      else checkpoint, args.device)
    images = list_images(args.inputs)
    written = explain_images(images, args.out_dir, mass=args.mass, **models)
    print(f'{len(images)} images -> {len(written)} files in {args.out_dir}', flush=True)


if __name__ == '__main__':
    main()
