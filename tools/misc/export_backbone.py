"""Export the backbone of a training checkpoint as a plain weight file for a config's `pretrained`.

    python tools/misc/export_backbone.py CHECKPOINT OUT [--student]

CHECKPOINT is a checkpoint file or a run's work dir (its latest checkpoint). By default the
teacher of a DINO run is exported, as the study does; ``--student`` exports the model's
``backbone`` (DINO's student, or any medtrans model's backbone). OUT ends in ``.safetensors``
(recommended) or ``.pth``. See docs/dino.md.
"""
import argparse


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Write a checkpoint's backbone weights as a file that a config's backbone "
        '`pretrained` reads.')
    parser.add_argument('checkpoint', help='checkpoint file, or a work dir (latest checkpoint)')
    parser.add_argument('out', help='output weight file (.safetensors or .pth)')
    parser.add_argument('--student', action='store_true',
                        help="export the model's backbone (the DINO student) instead of the "
                        'DINO teacher')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from medtrans.apis import export_backbone

    part = 'student' if args.student else 'teacher'
    weights = export_backbone(args.checkpoint, args.out, part=part)
    numel = sum(value.numel() for value in weights.values())
    print(f'Wrote the {part} backbone of {args.checkpoint} to {args.out}: {len(weights)} '
          f'tensors, {numel:,} values.')


if __name__ == '__main__':
    main()
