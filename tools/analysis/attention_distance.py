"""Mean attention distance per layer and head of a ViT (the study's Figure 5).

    python tools/analysis/attention_distance.py CONFIG [CHECKPOINT] --out-dir DIR \
        [--num-images 512] [--split test] [--data-root DIR]

For each block and head: every query patch's distance (in pixels) to the patches it attends,
weighted by the attention, averaged over the query patches and the first ``--num-images``
images of the split (read with the config's test pipeline). Writes ``attention_distance.csv``
(block, head, distance) and ``attention_distance.png`` (one dot per head, per block). Without
CHECKPOINT (or with ``none``) the config's own initialisation is analysed. ``--work-dir`` is the
training run's (default ``work_dirs/<config name>``): the split is checked against its record
there (or recorded, if the run has none).
"""
import argparse
import csv
import io
import os
import os.path as osp


def parse_args():
    from medtrans.apis.cli import add_config_args

    parser = argparse.ArgumentParser(description='Mean attention distance of a ViT')
    add_config_args(parser)
    parser.add_argument('checkpoint', nargs='?', help="checkpoint file, or 'none'")
    parser.add_argument('--out-dir', required=True, help='where the CSV and the plot go')
    parser.add_argument('--num-images', type=int, default=512, help='images (default: 512)')
    parser.add_argument('--split', choices=['test', 'val'], default='test',
                        help="the config's dataloader to read (default: test)")
    parser.add_argument('--batch-size', type=int, default=16, help='images per forward pass')
    parser.add_argument('--device', default='cpu', help="e.g. 'cuda:0' (default: cpu)")
    return parser.parse_args()


def plot(distances, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    blocks, heads = distances.shape
    fig, ax = plt.subplots(figsize=(6, 4))
    for head in range(heads):
        ax.scatter(range(1, blocks + 1), distances[:, head], s=12, alpha=0.7)
    ax.set_xlabel('block')
    ax.set_ylabel('mean attention distance (pixels)')
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    args = parse_args()
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from medtrans.analysis.attention import dataset_attention_distances
    from medtrans.apis import init_model, load_config, retarget_options
    from medtrans.datasets.splits import record_splits
    from medtrans.fileio import atomic_write_text

    cfg = load_config(args.config, args.cfg_options, **retarget_options(args))
    checkpoint = None if args.checkpoint in (None, 'none') else args.checkpoint
    model = init_model(cfg, checkpoint, args.device)
    loader_cfg = dict(cfg[f'{args.split}_dataloader'], batch_size=args.batch_size, num_workers=0,
                      persistent_workers=False)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'medtrans')):
        loader = Runner.build_dataloader(loader_cfg)
    # The images of the training run's split: checked against its record (in its work dir, as
    # tools/train.py names it).
    work_dir = args.work_dir or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    record_splits(loader.dataset, work_dir)
    distances, seen = dataset_attention_distances(model, loader, args.num_images)
    os.makedirs(args.out_dir, exist_ok=True)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator='\n')
    writer.writerow(['block', 'head', 'distance'])
    for block, row in enumerate(distances.tolist()):
        for head, value in enumerate(row):
            writer.writerow([block, head, f'{value:.6f}'])
    atomic_write_text(osp.join(args.out_dir, 'attention_distance.csv'), text.getvalue())
    plot(distances.numpy(), osp.join(args.out_dir, 'attention_distance.png'),
         f'{osp.basename(args.config)} ({seen} images)')
    print(f'\nmean attention distance of {seen} images -> {args.out_dir}', flush=True)


if __name__ == '__main__':
    main()
