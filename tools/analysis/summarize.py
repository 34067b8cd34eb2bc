"""The study's tables and figures from the work dirs of its runs.

    python tools/analysis/summarize.py work_dirs/studies/table1 [work_dirs/studies/table3 ...] \
        --out-dir work_dirs/studies/summary

Reads every run recorded by ``tools/run_study.py`` under the given folders and writes, per
table, ``table_<n>.md`` (the study's layout: median +- std over seeds, the run count, the
paper's median +- std and the difference of the medians; a 95% bootstrap interval where the
runs saved per-image predictions, resampling the unit the dataset's split groups by: patients,
lesions, or images where the data has no groups; for k-NN runs, their vote temperature beside
the authors') and ``table_<n>.csv``, and the figures that the tables present allow:
``figure1_initialisation.png`` (Tables 1 and 3) and ``figure3_capacity.png`` (Table 4), the
paper's medians as hollow markers beside ours. Runs without test metrics yet are listed and
left out. The intervals read the test sets' groups from the data, as the runs read it: run it
from the folder the study ran in, where the data is.
"""
import argparse


def parse_args():
    parser = argparse.ArgumentParser(description='Summarise a study as tables and figures')
    parser.add_argument('work_roots', nargs='+', help='study work roots (or any folders above '
                        'run work dirs)')
    parser.add_argument('--out-dir', required=True, help='where the tables and figures go')
    parser.add_argument('--no-figures', dest='figures', action='store_false',
                        help='tables only')
    parser.add_argument('--bootstrap', type=int, default=1000,
                        help='resamples of the 95%% bootstrap intervals from the runs\' '
                        'per-image predictions, by patient, lesion or image as the data '
                        'groups (0: none; default: 1000)')
    return parser.parse_args()


def main():
    args = parse_args()
    from medtrans.analysis.summary import (
        collect_results,
        plot_figures,
        summarize,
        write_tables,
    )

    results, unfinished = collect_results(args.work_roots)
    for folder in unfinished:
        print(f'not finished (no test metrics), left out: {folder}')
    if not results:
        raise SystemExit(f'summarize.py: no finished runs under {", ".join(args.work_roots)}')
    cells = summarize(results, bootstrap=args.bootstrap)
    written = write_tables(cells, args.out_dir)
    if args.figures:
        written += plot_figures(cells, args.out_dir)
    print(f'{len(results)} runs in {len(cells)} cells -> ' + ', '.join(written))


if __name__ == '__main__':
    main()
