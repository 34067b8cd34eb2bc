"""k-NN of frozen features at CheXpert's size: chunked (medtrans) vs the full similarity matrix.

``python benchmarks/knn.py`` builds 224,000 x 384 train embeddings with CheXpert-like targets
(14 classes, entries 1 / 0 / -1 = ignored) and 22,000 query embeddings, seeded, and runs in
two fresh processes, so that each peak is its own:

* **chunked**: :class:`medtrans.evaluation.functional.KNNClassifier` on all queries, with its
  default blocks (1,024 queries x 65,536 train samples);
* **full matrix**: the plain computation (normalise, one ``queries @ train.T``, ``topk``,
  weighted votes) on the first ``--subset`` queries, since the whole matrix (22,000 x 224,000
  float32, 19.7 GB) does not fit here; its time is scaled to all queries, its matrix size
  computed.

Both sides score the subset; the script compares their neighbour sets and scores. Peaks: the
process's peak resident memory (CPU, ``ru_maxrss``) or ``torch.cuda.max_memory_allocated``
(CUDA), also shown above the memory held once the inputs exist.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.benchlib import clock, synchronize  # noqa: E402
from medtrans.evaluation.functional import KNNClassifier  # noqa: E402

GIB = 1024**3


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--train', type=int, default=224_000, help='train (memory) samples')
    parser.add_argument('--queries', type=int, default=22_000, help='query samples')
    parser.add_argument('--dim', type=int, default=384, help='embedding width (DeiT-S: 384)')
    parser.add_argument('--classes', type=int, default=14, help='multi-label classes')
    parser.add_argument('--k', type=int, default=200)
    parser.add_argument('--temperature', type=float, default=0.07)
    parser.add_argument('--subset', type=int, default=2_200,
                        help='queries of the full-matrix side (and of the comparison)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--side', choices=['chunked', 'full'], help=argparse.SUPPRESS)
    parser.add_argument('--out', help=argparse.SUPPRESS)
    return parser.parse_args()


def make_inputs(args, device: torch.device):
    """Seeded embeddings and targets (about a third of the entries ignored)."""
    generator = torch.Generator().manual_seed(0)
    train = torch.randn(args.train, args.dim, generator=generator)
    queries = torch.randn(args.queries, args.dim, generator=generator)
    targets = torch.randint(-1, 2, (args.train, args.classes), generator=generator)
    return train.to(device), targets.to(device), queries.to(device)


def resident_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_bytes(device: torch.device) -> int:
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def held_bytes(device: torch.device) -> int:
    if device.type == 'cuda':
        return torch.cuda.memory_allocated(device)
    return resident_bytes()


def full_matrix(train, targets, queries, k, temperature):
    """The plain computation: the whole similarity matrix, then top-k and the votes."""
    sims = F.normalize(queries, dim=1) @ F.normalize(train, dim=1).T
    values, indices = sims.topk(k, dim=1)
    del sims
    weights = torch.exp(values / temperature).unsqueeze(2)
    neighbours = targets[indices]
    scored = (neighbours != -1).to(weights.dtype)
    positive = (weights * (neighbours == 1)).sum(1)
    total = (weights * scored).sum(1)
    prior = (targets == 1).sum(0) / (targets != -1).sum(0)
    return torch.where(total > 0, positive / total.clamp_min(1e-30), prior), indices


def run_side(args) -> None:
    device = torch.device(args.device)
    train, targets, queries = make_inputs(args, device)
    synchronize(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    held = held_bytes(device)
    start = clock(device)
    if args.side == 'chunked':
        classifier = KNNClassifier(train, targets, k=args.k, temperature=args.temperature)
        classifier.scores(queries)
        seconds = clock(device) - start
        peak = peak_bytes(device)
        scores = classifier.scores(queries[:args.subset])
        indices = classifier.neighbours(queries[:args.subset])[1]
        measured = args.queries
    else:
        scores, indices = full_matrix(train, targets, queries[:args.subset], args.k,
                                      args.temperature)
        seconds = clock(device) - start
        peak = peak_bytes(device)
        measured = args.subset
    torch.save(dict(scores=scores.cpu(), indices=indices.cpu()), args.out)
    print(json.dumps(dict(seconds=seconds, queries=measured, peak=peak, held=held)))


def launch(side: str, out: str) -> dict:
    result = subprocess.run([sys.executable, __file__, *sys.argv[1:], '--side', side, '--out',
                             out], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f'{side} side failed:\n{result.stdout}{result.stderr}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    if args.side:
        run_side(args)
        return
    matrix = args.queries * args.train * 4
    print(f'k-NN: {args.train:,} x {args.dim} train embeddings ({args.classes} classes, '
          f'multi-label with ignored entries), {args.queries:,} queries, k={args.k}, '
          f'T={args.temperature}, {args.device}, {torch.get_num_threads()} threads')
    print(f'full similarity matrix: {matrix / GIB:.1f} GiB (float32); the full-matrix side '
          f'runs on the first {args.subset:,} queries and is scaled')
    with tempfile.TemporaryDirectory() as tmp:
        results, outputs = {}, {}
        for side in ('chunked', 'full'):
            path = os.path.join(tmp, f'{side}.pt')
            results[side] = launch(side, path)
            outputs[side] = torch.load(path)
    scale = args.queries / results['full']['queries']
    rows = [('chunked (medtrans)', results['chunked'], 1.0),
            (f'full matrix, {args.subset:,} queries', results['full'], 1.0),
            (f'full matrix, scaled to {args.queries:,}', results['full'], scale)]
    print(f'{"side":<32} {"time (s)":>10} {"peak (GiB)":>11} {"peak - inputs":>14}')
    for name, result, factor in rows:
        extra = result['peak'] - result['held']
        if factor == 1.0:
            peak, above = f'{result["peak"] / GIB:.2f}', f'{extra / GIB:.2f}'
        else:
            # Only the similarity matrix grows with the number of queries.
            subset_matrix = args.subset * args.train * 4
            peak, above = '-', f'~{(extra - subset_matrix + matrix) / GIB:.1f}'
        print(f'{name:<32} {result["seconds"] * factor:>10.1f} {peak:>11} {above:>14}')
    chunked, full = outputs['chunked'], outputs['full']
    same_sets = (chunked['indices'].sort(1).values == full['indices'].sort(1).values).all(1)
    difference = (chunked['scores'] - full['scores']).abs().max().item()
    print(f'first {args.subset:,} queries: identical neighbour sets for '
          f'{int(same_sets.sum())}/{len(same_sets)}, identical scores for '
          f'{int((chunked["scores"] == full["scores"]).all(1).sum())}/{len(same_sets)}, '
          f'max |score difference| {difference:.2e}, identical predictions (score > 0.5) for '
          f'{int(((chunked["scores"] > 0.5) == (full["scores"] > 0.5)).all(1).sum())}'
          f'/{len(same_sets)}')


if __name__ == '__main__':
    main()
