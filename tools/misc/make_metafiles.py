"""Write each config folder's ``metafile.yml`` and the results table of its ``README.md``
(mmpretrain's layout), from the config files, the study specs and the paper's numbers, and the
paper's tables in ``docs/paper.md``.

    python tools/misc/make_metafiles.py           # (re)write them
    python tools/misc/make_metafiles.py --check   # exit 1, naming the stale files, if one differs

Each runnable config under ``configs/classification/<model>/``, ``configs/dino/``,
``configs/knn/<model>/`` and ``configs/deeplabv3/`` (with the headline
``configs/deeplab3_deit_s_isic2018.py``) is one ``Models`` entry, named by its file stem, with
metadata read from that name. Which table cells a config reproduces is what the study specs
(``configs/studies/table*.py``, ``tools/run_study.py``) say; their numbers are
:data:`medtrans.analysis.paper.PAPER`.
A config in no cell (a DINO pretraining, a segmentation ablation the paper does not report)
gets ``Results: null``. A README keeps its prose; only the part between :data:`BEGIN` and
:data:`END` is written here. ``docs/paper.md`` likewise: its tables, every cell of
:data:`~medtrans.analysis.paper.PAPER` (:func:`paper_tables`), between the same two lines.
"""
import argparse
import importlib.util
import itertools
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]


def _paper():
    # By path: medtrans.analysis.paper imports nothing, the medtrans package the whole stack.
    spec = importlib.util.spec_from_file_location('_paper', ROOT / 'medtrans/analysis/paper.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAPER = _paper().PAPER
Cell = Tuple[str, str, str]
PAPER_TITLE = 'Pretrained ViTs Yield Versatile Representations For Medical Images'
PAPER_URL = 'https://arxiv.org/abs/2303.07034'
HEADLINE = 'configs/deeplab3_deit_s_isic2018.py'
BEGIN = '<!-- [RESULTS-BEGIN] written by tools/misc/make_metafiles.py: do not edit -->'
END = '<!-- [RESULTS-END] -->'
HEADER = ('# Written by tools/misc/make_metafiles.py from the configs, configs/studies/ and the\n'
          "# paper's numbers: edit those and rerun it, not this file.\n")

#: Dataset name part -> (display name, metric key: the dataset base's ``monitor``).
DATASETS = {
    'aptos2019': ('APTOS 2019', 'kappa'),
    'cbis-ddsm': ('CBIS-DDSM', 'auc'),
    'isic2019': ('ISIC 2019', 'recall'),
    'chexpert': ('CheXpert', 'auc'),
    'pcam': ('PatchCamelyon', 'auc'),
    'isic2018': ('ISIC 2018 Task 1', 'IoU'),
    'csaw-s': ('CSAW-S', 'IoU'),
}
#: Model name part -> display name.
MODELS = {
    'resnet18': 'ResNet-18', 'resnet50': 'ResNet-50', 'resnet152': 'ResNet-152',
    'r50-d8': 'ResNet-50', 'inception-v3': 'Inception-v3', 'swin-t': 'Swin-T',
    'deit-t': 'DeiT-T', 'deit-s': 'DeiT-S', 'deit-b': 'DeiT-B',
    'deit-s-p8': 'DeiT-S (8x8 patches)',
}
#: Initialisation name part (none: ImageNet, as the segmentation configs) -> display name.
INITS = {'random': 'random', 'in1k': 'ImageNet', 'in1k-dino': 'ImageNet+DINO', None: 'ImageNet'}

_INIT = r'(?P<init>random|in1k|in1k-dino)'
_BATCH = r'(?P<gpus>\d+)xb(?P<batch>\d+)'
#: Config folder kind -> the pattern of its config names (docs/classification.md, docs/dino.md,
#: docs/knn.md, mmseg's naming for configs/deeplabv3/).
PATTERNS = {
    'classification': rf'(?P<model>[^_]+)_{_INIT}_{_BATCH}_plateau_(?P<data>[^_]+)-224',
    'dino': rf'dino_(?P<model>[^_]+)_in1k_{_BATCH}_(?P<epochs>\d+)e_(?P<data>[^_]+)-224-96',
    'knn': rf'knn_(?P<model>[^_]+)_{_INIT}_{_BATCH}_(?P<data>[^_]+)-224',
    'deeplabv3': rf'deeplabv3_(?P<model>[^_]+?)(?:_(?P<init>random))?_{_BATCH}_plateau_'
                 r'(?P<data>[^_]+)-512x512',
}
#: The headline keeps its name (docs/style.md); its fields are those of the name it would have
#: (the batch of its segmentation recipe, seg_recipe_512x512.py).
HEADLINE_FIELDS = dict(model='deit-s', init=None, gpus='1', batch='8', data='isic2018')


def folders() -> Dict[str, List[str]]:
    """Each config folder (repo-relative) -> its runnable configs (repo-relative paths)."""
    found: Dict[str, List[str]] = {}
    for pattern in ('classification/*/*.py', 'dino/*.py', 'knn/*/*.py', 'deeplabv3/*.py'):
        for path in sorted((ROOT / 'configs').glob(pattern)):
            rel = path.relative_to(ROOT)
            found.setdefault(rel.parent.as_posix(), []).append(rel.as_posix())
    found['configs/deeplabv3'].insert(0, HEADLINE)
    return found


def kind_of(folder: str) -> str:
    return folder.split('/')[1]


def fields_of(config: str, kind: str) -> Dict[str, Optional[str]]:
    """The fields of a config's name; an unexpected name is an error, not a guess."""
    if config == HEADLINE:
        return dict(HEADLINE_FIELDS)
    stem = Path(config).stem
    match = re.fullmatch(PATTERNS[kind], stem)
    if not match or match.group('model') not in MODELS or match.group('data') not in DATASETS:
        raise ValueError(f'{config}: the name does not follow {PATTERNS[kind]!r} with a known '
                         f'model ({", ".join(MODELS)}) and dataset ({", ".join(DATASETS)}).')
    return match.groupdict()


def _expand(grid: dict, keys: Tuple[str, ...]) -> List[dict]:
    # As medtrans.analysis.study expands a spec's grid (read here without importing medtrans).
    axes = list(grid['values'])
    cells = []
    for choice in itertools.product(*(list(grid['values'][axis].items()) for axis in axes)):
        values = {}
        for axis, (display, extra) in zip(axes, choice):
            values[axis] = display
            values.update(extra or {})
        cells.append({key: grid[key].format(**values) for key in keys})
    return cells


def study_cells() -> Tuple[Dict[str, List[Cell]], List[str]]:
    """Config -> the table cells the study specs run it for; and the pretraining configs."""
    cells: Dict[str, List[Cell]] = {}
    pretraining: List[str] = []
    for spec_path in sorted((ROOT / 'configs' / 'studies').glob('table*.py')):
        spec = Config.fromfile(str(spec_path))
        items = [dict(c) for c in spec.get('cells') or []]
        if spec.get('grid'):
            items += _expand(spec.grid, ('table', 'row', 'column', 'config'))
        for item in items:
            cells.setdefault(item['config'], []).append(
                (item['table'], item['row'], item['column']))
        items = spec.get('pretraining') or []
        if isinstance(items, dict):  # a grid
            items = _expand(items, ('config', ))
        pretraining += [item['config'] for item in items]
    return cells, sorted(set(pretraining))


def _results(config: str, kind: str, fields: dict, cells: List[Cell]) -> Optional[list]:
    if not cells:
        return None
    numbers = {PAPER[cell] for cell in cells}
    if len(numbers) != 1:
        raise ValueError(f'{config}: its cells {cells} hold different numbers {numbers}.')
    median, std = numbers.pop()
    dataset, metric = DATASETS[fields['data']]
    task = 'Semantic Segmentation' if kind == 'deeplabv3' else 'Image Classification'
    return [dict(Task=task, Dataset=dataset, Metrics={metric: median, f'{metric}_std': std})]


def _entry(config: str, kind: str, collection: str, cells: List[Cell],
           downstream: List[str]) -> dict:
    fields = fields_of(config, kind)
    metadata = {'Training Data': DATASETS[fields['data']][0],
                'Initialization': INITS[fields['init']] if kind != 'dino' else 'ImageNet'}
    if kind == 'deeplabv3':
        metadata['Encoder'] = MODELS[fields['model']]
    if kind == 'knn':
        metadata['Evaluation'] = 'k-NN of frozen features'
    if kind == 'dino':
        metadata['Epochs'] = int(fields['epochs'])
    metadata['Batch Size'] = int(fields['gpus']) * int(fields['batch'])
    metadata['GPUs'] = int(fields['gpus'])
    if cells:
        metadata['Paper Tables'] = sorted({table for table, _, _ in cells})
    entry = {'Name': Path(config).stem, 'In Collection': collection, 'Metadata': metadata,
             'Results': _results(config, kind, fields, cells), 'Config': config}
    if downstream:
        entry['Downstream'] = downstream
    return entry


def _collection(folder: str, configs: List[str]) -> dict:
    kind = kind_of(folder)
    models = sorted({MODELS[fields_of(c, kind)['model']] for c in configs})
    if kind == 'classification':
        name, architecture = f'{models[0]} medical classification', models
    elif kind == 'knn':
        name, architecture = f'{models[0]} k-NN', models + ['k-NN']
    elif kind == 'dino':
        name, architecture = 'DINO medical pretraining', ['DINO'] + models
    else:
        name, architecture = 'DeepLabV3 medical segmentation', ['DeepLabV3'] + models
    data = [DATASETS[d][0] for d in DATASETS if any(fields_of(c, kind)['data'] == d
                                                    for c in configs)]
    return {'Name': name,
            'Metadata': {'Training Data': data, 'Architecture': architecture},
            'Paper': {'Title': PAPER_TITLE, 'URL': PAPER_URL},
            'README': f'{folder}/README.md'}


def metafiles() -> Dict[str, dict]:
    """Each config folder -> its metafile's content."""
    cells, pretraining = study_cells()
    found = folders()
    downstream: Dict[Tuple[str, str], List[str]] = {}
    for folder, configs in found.items():
        if kind_of(folder) in ('classification', 'knn'):
            for config in configs:
                fields = fields_of(config, kind_of(folder))
                if fields['init'] == 'in1k-dino':
                    downstream.setdefault((fields['model'], fields['data']), []).append(
                        Path(config).stem)
    out = {}
    for folder, configs in found.items():
        kind = kind_of(folder)
        collection = _collection(folder, configs)
        models = []
        for config in configs:
            fields = fields_of(config, kind)
            after = []
            if kind == 'dino':
                if config not in pretraining:
                    raise ValueError(f'{config}: no study spec pretrains with it.')
                after = sorted(downstream.get((fields['model'], fields['data']), []))
            models.append(_entry(config, kind, collection['Name'], cells.get(config, []), after))
        out[folder] = {'Collections': [collection], 'Models': models}
    return out


class _Dumper(yaml.SafeDumper):
    """mmpretrain's metafile layout: list items indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)


def dump(metafile: dict) -> str:
    return HEADER + yaml.dump(metafile, Dumper=_Dumper, sort_keys=False, width=100,
                              allow_unicode=True)


def results_table(folder: str, metafile: dict) -> str:
    """The README's results table: one row per config, the paper's number or why there is none."""
    lines = ['| Model | Init | Dataset | Metric | Paper (median ± std) | Paper table | Config |',
             '| :-- | :-: | :-: | :-: | :-: | :-: | :-: |']
    for model in metafile['Models']:
        meta = model['Metadata']
        link = Path(model['Config']).relative_to(folder) if model['Config'].startswith(
            folder + '/') else Path('..') / Path(model['Config']).relative_to('configs')
        if model['Results']:
            (metric, median), (_, std) = model['Results'][0]['Metrics'].items()
            value = f'{median:.3f} ± {std:.3f}'
            tables = ', '.join(meta['Paper Tables'])
        else:
            metric, tables = '-', '-'
            value = 'not reported' + (' (pretraining)' if 'Epochs' in meta else '')
        lines.append(f'| `{model["Name"]}` | {meta["Initialization"]} | '
                     f'{meta["Training Data"]} | {metric} | {value} | {tables} | '
                     f'[config]({link.as_posix()}) |')
    return '\n'.join(lines) + '\n'


def with_table(readme: str, table: str, path: str) -> str:
    """``readme`` with the part between :data:`BEGIN` and :data:`END` replaced by ``table``."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1:
        raise ValueError(f'{path}: needs one line {BEGIN!r} and one {END!r} around its results '
                         'table.')
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    return f'{head}{BEGIN}\n\n{table}\n{END}{tail}'


#: The doc of the paper's numbers, and what each of its tables shows.
PAPER_DOC = 'docs/paper.md'
TABLES = {
    'Table 1': 'fine-tuned classification, three initialisations',
    'Table 2': 'segmentation with DeepLabV3, ImageNet initialisation',
    'Table 3': ('k-NN of frozen features (the random rows over 5 random initialisations; the '
                'others deterministic, +- 0.000)'),
    'Table 4': 'capacity: ImageNet initialisation, fine-tuned',
    'Table 5': 'DeiT-S patch size: ImageNet initialisation, fine-tuned',
}
#: A table column (as the study specs and paper.py name it) -> its header in the doc.
PAPER_COLUMNS = {
    'APTOS2019': 'APTOS 2019 (kappa)', 'CBIS-DDSM': 'CBIS-DDSM (ROC-AUC)',
    'ISIC2019': 'ISIC 2019 (recall)', 'CheXpert': 'CheXpert (ROC-AUC)',
    'PCam': 'PatchCamelyon (ROC-AUC)', 'ISIC2018': 'ISIC 2018 Task 1 (IoU)',
    'CSAW-S': 'CSAW-S (IoU)',
}


def paper_tables() -> str:
    """Every cell of the paper's Tables 1-5 as Markdown tables, ``median ± std``, in its order."""
    parts = []
    for table, title in TABLES.items():
        cells = {(row, column): value for (t, row, column), value in PAPER.items() if t == table}
        rows = list(dict.fromkeys(row for row, _ in cells))
        columns = list(dict.fromkeys(column for _, column in cells))
        lines = [f'### {table}: {title}', '',
                 '| | ' + ' | '.join(PAPER_COLUMNS[c] for c in columns) + ' |',
                 '| :-- |' + ' :-: |' * len(columns)]
        lines += [f'| {row} | ' + ' | '.join('{:.3f} ± {:.3f}'.format(*cells[row, column])
                                             for column in columns) + ' |' for row in rows]
        parts.append('\n'.join(lines) + '\n')
    return '\n'.join(parts)


def expected_files() -> Dict[Path, str]:
    """Every file this script writes -> its content."""
    doc = ROOT / PAPER_DOC
    out = {doc: with_table(doc.read_text(encoding='utf-8'), paper_tables(), PAPER_DOC)}
    found = metafiles()
    # mmpretrain's and mmseg's model index: the metafiles, for OpenMMLab's tooling (mim).
    out[ROOT / 'model-index.yml'] = dump(
        dict(Import=[(Path(folder) / 'metafile.yml').as_posix()
                     for folder in sorted(found)]))
    for folder, metafile in found.items():
        out[ROOT / folder / 'metafile.yml'] = dump(metafile)
        readme = ROOT / folder / 'README.md'
        text = readme.read_text(encoding='utf-8') if readme.is_file() else ''
        out[readme] = with_table(text, results_table(folder, metafile), f'{folder}/README.md')
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Write the config folders' metafile.yml and README results tables, and the "
        "paper's tables in docs/paper.md.")
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 if a file differs from what would be written')
    args = parser.parse_args()
    stale = []
    for path, text in expected_files().items():
        if path.is_file() and path.read_text(encoding='utf-8') == text:
            continue
        stale.append(path.relative_to(ROOT).as_posix())
        if not args.check:
            path.write_text(text, encoding='utf-8')
    verb = 'differ from the generated text' if args.check else 'written'
    print(f'{len(stale)} file(s) {verb}' + ''.join(f'\n  {p}' for p in stale))
    return 1 if args.check and stale else 0


if __name__ == '__main__':
    sys.exit(main())
