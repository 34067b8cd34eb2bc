"""The paper's numbers: every cell of Tables 1-5, median and std, as the paper prints them."""
import re
from collections import Counter

import pytest

from medtrans.analysis.paper import KNN_TABLE, KNN_TEMPERATURE, PAPER, PAPER_RESULTS

COLUMNS = ('APTOS2019', 'CBIS-DDSM', 'ISIC2019', 'CheXpert', 'PCam')
INITS = ('random', 'ImageNet', 'ImageNet+DINO')
#: The study's reference settings, which transcribe every cell of the paper.
SETTINGS = 'docs/paper-settings.md'


def test_every_cell_of_tables_1_to_5_is_there():
    # Table 1: 3 initialisations x 4 models x 5 datasets; Table 2: 2 models x 2 datasets;
    # Table 3: 3 x 2 x 5; Table 4: 6 models x 5; Table 5: 2 patch sizes x 5.
    assert Counter(table for table, _, _ in PAPER) == {
        'Table 1': 60, 'Table 2': 4, 'Table 3': 30, 'Table 4': 30, 'Table 5': 10}
    assert len(PAPER) == 134
    rows = {table: {row for t, row, _ in PAPER if t == table} for table, _, _ in PAPER}
    assert rows['Table 1'] == {f'{init} {model}' for init in INITS
                               for model in ('Inception', 'ResNet50', 'DeiT-S', 'Swin-T')}
    assert rows['Table 2'] == {'DeepLabV3 ResNet50', 'DeepLabV3 DeiT-S'}
    assert rows['Table 3'] == {f'{init} {model}' for init in INITS
                               for model in ('ResNet50', 'DeiT-S')}
    assert rows['Table 4'] == {'ResNet18', 'ResNet50', 'ResNet152', 'DeiT-T', 'DeiT-S',
                               'DeiT-B'}
    assert rows['Table 5'] == {'DeiT-S 16x16', 'DeiT-S 8x8'}
    for table, _, column in PAPER:
        assert column in (('ISIC2018', 'CSAW-S') if table == 'Table 2' else COLUMNS)
    # Medians and stds as printed: three decimals.
    for cell, (median, std) in PAPER.items():
        assert round(median, 3) == median and round(std, 3) == std and std >= 0, cell
    assert PAPER_RESULTS == {cell: median for cell, (median, _) in PAPER.items()}
    assert (KNN_TABLE, KNN_TEMPERATURE) == ('Table 3', 0.1)


def test_a_few_cells_as_the_paper_prints_them():
    assert PAPER[('Table 1', 'random Swin-T', 'ISIC2019')] == (0.619, 0.080)
    assert PAPER[('Table 1', 'ImageNet+DINO DeiT-S', 'PCam')] == (0.976, 0.002)
    assert PAPER[('Table 2', 'DeepLabV3 DeiT-S', 'CSAW-S')] == (0.322, 0.028)
    assert PAPER[('Table 3', 'random DeiT-S', 'APTOS2019')] == (0.018, 0.086)
    assert PAPER[('Table 3', 'ImageNet+DINO DeiT-S', 'ISIC2019')] == (0.637, 0.0)
    assert PAPER[('Table 4', 'ResNet152', 'PCam')] == (0.965, 0.003)
    assert PAPER[('Table 5', 'DeiT-S 8x8', 'CheXpert')] == (0.800, 0.001)


def _settings_cells(text: str) -> dict:
    """Every cell of the reference settings' tables: (table, row, column) -> (median, std)."""
    cells, table = {}, None
    for line in text.splitlines():
        heading = re.match(r'Table (\d) \(', line)
        if heading:
            table = f'Table {heading.group(1)}'
        if table is None or not line.startswith('| ') or not re.search(r'\d\.\d{3}', line):
            continue
        entries = [entry.strip() for entry in line.strip().strip('|').split('|')]
        keys, values = entries[:-5], entries[-5:]
        row = f'DeiT-S {keys[0]}' if table == 'Table 5' else ' '.join(keys)
        for column, value in zip(COLUMNS, values):
            median, std = re.fullmatch(r'(\d\.\d{3})(?: \+- (\d\.\d{3}))?', value).groups()
            # Table 3's deterministic rows are printed without std (+- 0.000 in the paper).
            cells[(table, row, column)] = (float(median), float(std or 0))
    segmentation = re.search(r'Table 2 \(segmentation IoU\):(.*?)\n\n', text, re.S).group(1)
    for model, *numbers in re.findall(r'DeepLabV3-(\S+) (\S+) \+- (\S+) / (\S+) \+- (\S+)',
                                      segmentation):
        model = model.rstrip(';')
        numbers = [float(n.rstrip(';.')) for n in numbers]
        cells[('Table 2', f'DeepLabV3 {model}', 'ISIC2018')] = tuple(numbers[:2])
        cells[('Table 2', f'DeepLabV3 {model}', 'CSAW-S')] = tuple(numbers[2:])
    return cells


def test_every_cell_is_the_reference_settings(repo_root):
    path = repo_root.parent / 'shared' / SETTINGS
    if not path.is_file():
        pytest.skip(f'the study\'s reference settings not found at {path}')
    reference = _settings_cells(path.read_text())
    assert len(reference) == 134
    assert PAPER == reference


def _doc_cells(text: str) -> dict:
    """Every cell of docs/paper.md's tables: (table, row, column) -> (median, std)."""
    names = {'APTOS 2019': 'APTOS2019', 'CBIS-DDSM': 'CBIS-DDSM', 'ISIC 2019': 'ISIC2019',
             'CheXpert': 'CheXpert', 'PatchCamelyon': 'PCam', 'ISIC 2018 Task 1': 'ISIC2018',
             'CSAW-S': 'CSAW-S'}
    cells, table, columns = {}, None, []
    for line in text.splitlines():
        heading = re.match(r'### (Table \d): ', line)
        if heading:
            table = heading.group(1)
        entries = [entry.strip() for entry in line.strip().strip('|').split('|')]
        if line.startswith('| |'):
            columns = [names[re.sub(r' \(.*\)$', '', entry)] for entry in entries[1:]]
        elif line.startswith('| ') and table and not line.startswith('| :'):
            for column, value in zip(columns, entries[1:], strict=True):
                median, std = re.fullmatch(r'(\d\.\d{3}) ± (\d\.\d{3})', value).groups()
                cells[(table, entries[0], column)] = (float(median), float(std))
    return cells


def test_the_repository_doc_holds_every_cell(repo_root):
    # docs/paper.md is what a clone has of the paper's numbers (written by make_metafiles.py).
    text = (repo_root / 'docs' / 'paper.md').read_text(encoding='utf-8')
    assert _doc_cells(text) == PAPER
    changed = text.replace('| DeepLabV3 DeiT-S | 0.845 ± 0.014 |',
                           '| DeepLabV3 DeiT-S | 0.854 ± 0.014 |')
    assert changed != text and _doc_cells(changed) != PAPER
