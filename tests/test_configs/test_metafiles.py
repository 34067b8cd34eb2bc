"""The config folders' ``metafile.yml`` and ``README.md`` (mmpretrain's layout): every runnable
config is one ``Models`` entry, every number is the paper's, each README's results table lists
the metafile's numbers, and the committed files are what ``tools/misc/make_metafiles.py``
writes."""
import importlib.util
import re
from collections import Counter
from pathlib import Path
from typing import Dict

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _load(name: str, path: str):
    # By path: neither file needs the medtrans package, whose import pulls in torch and the
    # OpenMMLab stack.
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAPER = _load('_paper', 'medtrans/analysis/paper.py').PAPER
make_metafiles = _load('_make_metafiles', 'tools/misc/make_metafiles.py')

#: Every runnable config; configs/demo/ is the synthetic-data demo, in no table of the paper.
RUNNABLE = sorted(p.relative_to(REPO).as_posix() for p in (REPO / 'configs').rglob('*.py')
                  if not {'_base_', 'studies', 'demo'} & set(p.relative_to(REPO).parts))
HEADLINE = 'configs/deeplab3_deit_s_isic2018.py'
METRICS = {'kappa': (-1.0, 1.0), 'auc': (0.0, 1.0), 'recall': (0.0, 1.0), 'IoU': (0.0, 1.0)}
TASKS = {'Image Classification', 'Semantic Segmentation', 'Self-supervised pretraining'}
INITS = {'random', 'ImageNet', 'ImageNet+DINO'}
#: A table column (as the study specs and paper.py name it) -> the metafile's dataset name.
COLUMNS = {'APTOS2019': 'APTOS 2019', 'CBIS-DDSM': 'CBIS-DDSM', 'ISIC2019': 'ISIC 2019',
           'CheXpert': 'CheXpert', 'PCam': 'PatchCamelyon', 'ISIC2018': 'ISIC 2018 Task 1',
           'CSAW-S': 'CSAW-S'}


@pytest.fixture(scope='module')
def metafiles() -> Dict[str, dict]:
    """Config folder -> its parsed metafile."""
    return {path.parent.relative_to(REPO).as_posix(): yaml.safe_load(path.read_text('utf-8'))
            for path in sorted((REPO / 'configs').rglob('metafile.yml'))}


def _entries(metafiles: Dict[str, dict]):
    return [(folder, model) for folder, meta in metafiles.items() for model in meta['Models']]


def test_every_config_is_one_entry(metafiles):
    counts = Counter(model['Config'] for _, model in _entries(metafiles))
    assert sorted(set(RUNNABLE) - set(counts)) == [], 'configs in no metafile'
    assert sorted(set(counts) - set(RUNNABLE)) == [], 'entries of no runnable config'
    assert [c for c, n in counts.items() if n > 1] == [], 'configs in several entries'
    for folder, model in _entries(metafiles):
        # Each in its own folder's metafile; the headline in configs/deeplabv3's.
        home = 'configs/deeplabv3' if model['Config'] == HEADLINE else \
            Path(model['Config']).parent.as_posix()
        assert folder == home, model['Config']


def test_entries_are_well_formed(metafiles):
    names = Counter(model['Name'] for _, model in _entries(metafiles))
    assert [n for n, count in names.items() if count > 1] == []
    for folder, meta in metafiles.items():
        collections = {c['Name']: c for c in meta['Collections']}
        for collection in collections.values():
            assert collection['Metadata']['Training Data'] and \
                collection['Metadata']['Architecture'], folder
            assert collection['Paper'] == {'Title': make_metafiles.PAPER_TITLE,
                                           'URL': 'https://arxiv.org/abs/2303.07034'}
            assert collection['README'] == f'{folder}/README.md'
            assert (REPO / collection['README']).is_file()
        for model in meta['Models']:
            assert (REPO / model['Config']).is_file(), model['Config']
            assert model['Name'] == Path(model['Config']).stem
            assert 'Weights' not in model, 'nothing is published'
            metadata = model['Metadata']
            assert metadata['Initialization'] in INITS, model['Name']
            assert metadata['Training Data'] in COLUMNS.values(), model['Name']
            collection = collections[model['In Collection']]
            assert metadata['Training Data'] in collection['Metadata']['Training Data']
            for key in ('Batch Size', 'GPUs'):
                assert isinstance(metadata[key], int) and metadata[key] > 0, model['Name']
            assert set(model.get('Downstream', [])) <= set(names), model['Name']
            for result in model['Results'] or []:
                assert result['Task'] in TASKS and result['Dataset'] == metadata['Training Data']
                metric = next(iter(result['Metrics']))
                assert metric in METRICS and set(result['Metrics']) == {metric, f'{metric}_std'}
                low, high = METRICS[metric]
                median, std = result['Metrics'][metric], result['Metrics'][f'{metric}_std']
                assert type(median) is float and low <= median <= high, model['Name']
                assert type(std) is float and 0.0 <= std <= high - low, model['Name']


def _check_numbers(metafiles: Dict[str, dict], paper: Dict[tuple, tuple]) -> int:
    """Assert each entry's median and std are ``paper``'s for every cell the study specs run its
    config for, that entries in no cell have no results, and that every cell of ``paper`` is some
    config's; return the number of (config, cell) pairs compared."""
    cells, _ = make_metafiles.study_cells()
    compared = 0
    for _, model in _entries(metafiles):
        config_cells = cells.get(model['Config'], [])
        if not config_cells:
            assert model['Results'] is None, f'{model["Name"]}: in no cell of the paper'
            continue
        assert model['Results'], f'{model["Name"]}: the paper reports its cells {config_cells}'
        metrics = model['Results'][0]['Metrics']
        metric = next(iter(metrics))
        numbers = (metrics[metric], metrics[f'{metric}_std'])
        for table, row, column in config_cells:
            # The cell is the entry's: same dataset, same initialisation.
            assert COLUMNS[column] == model['Metadata']['Training Data'], model['Name']
            if table in ('Table 1', 'Table 3'):
                assert row.split()[0] == model['Metadata']['Initialization'], model['Name']
            assert numbers == paper[(table, row, column)], (model['Name'], table, row)
            compared += 1
    assert set(paper) <= {cell for found in cells.values() for cell in found}
    return compared


def test_numbers_are_the_papers(metafiles):
    # All 134 cells of the paper's Tables 1-5 (medtrans.analysis.paper), median and std.
    assert len(PAPER) == 134
    assert _check_numbers(metafiles, PAPER) >= len(PAPER)


@pytest.mark.parametrize('change', [(0.001, 0.0), (0.0, 0.001)])
def test_a_wrong_number_fails(metafiles, change):
    cell = ('Table 2', 'DeepLabV3 DeiT-S', 'ISIC2018')
    wrong = tuple(value + delta for value, delta in zip(PAPER[cell], change))
    with pytest.raises(AssertionError):
        _check_numbers(metafiles, {**PAPER, cell: wrong})


_ROW = re.compile(r'^\| `(?P<name>[^`]+)` \| (?P<init>[^|]+) \| (?P<data>[^|]+) \| '
                  r'(?P<metric>[^|]+) \| (?P<value>[^|]+) \| (?P<tables>[^|]+) \| '
                  r'\[config\]\((?P<link>[^)]+)\) \|$')


def _check_readme(readme: Path, text: str, meta: dict) -> None:
    """Assert the results table of ``text`` (the README at ``readme``) lists ``meta``'s
    entries, their numbers and their configs."""
    block = text.split(make_metafiles.BEGIN)[1].split(make_metafiles.END)[0]
    rows = [line for line in block.splitlines() if line.startswith('| `')]
    parsed = {}
    for line in rows:
        match = _ROW.match(line)
        assert match, f'{readme}: unreadable row {line!r}'
        parsed[match['name']] = {k: v.strip() for k, v in match.groupdict().items()}
    assert len(parsed) == len(rows) and list(parsed) == [m['Name'] for m in meta['Models']]
    for model in meta['Models']:
        row = parsed[model['Name']]
        assert row['init'] == model['Metadata']['Initialization'], model['Name']
        assert row['data'] == model['Metadata']['Training Data'], model['Name']
        assert (readme.parent / row['link']).resolve() == (REPO / model['Config']).resolve()
        if model['Results'] is None:
            assert row['metric'] == '-' and row['value'].startswith('not reported')
            continue
        metrics = model['Results'][0]['Metrics']
        metric = next(iter(metrics))
        median, std = re.fullmatch(r'(\S+) ± (\S+)', row['value']).groups()
        assert row['metric'] == metric, model['Name']
        assert (float(median), float(std)) == (metrics[metric], metrics[f'{metric}_std']), \
            model['Name']
        assert row['tables'] == ', '.join(model['Metadata']['Paper Tables']), model['Name']


def test_readme_tables_list_the_metafiles(metafiles):
    for meta in metafiles.values():
        readme = REPO / meta['Collections'][0]['README']
        _check_readme(readme, readme.read_text('utf-8'), meta)


def test_a_readme_with_another_number_fails(metafiles):
    meta = metafiles['configs/deeplabv3']
    readme = REPO / meta['Collections'][0]['README']
    text = readme.read_text('utf-8')
    assert '| 0.845 ± 0.014 |' in text
    with pytest.raises(AssertionError):
        _check_readme(readme, text.replace('| 0.845 ± 0.014 |', '| 0.854 ± 0.014 |'), meta)


def test_committed_files_are_the_generated_ones():
    stale = [path.relative_to(REPO).as_posix()
             for path, text in make_metafiles.expected_files().items()
             if not path.is_file() or path.read_text('utf-8') != text]
    assert stale == [], 'rerun: python tools/misc/make_metafiles.py'
