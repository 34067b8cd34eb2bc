"""check_dataset on the classification datasets: every image decoded, lesions across splits,
every bad table row."""
import json
import subprocess
import sys

import pytest
from mmengine.config import Config

from medtrans.datasets import ISIC2019Dataset
from medtrans.datasets.check import check_dataset
from medtrans.setup_env import register_all_modules
from medtrans.testing import write_csv, write_images

CLASSES = ('MEL', 'NV', 'BCC', 'AK', 'BKL', 'DF', 'VASC', 'SCC', 'UNK')
APTOS_CONFIG = 'configs/classification/resnet18/resnet18_in1k_1xb64_plateau_aptos2019-224.py'
PIPELINE = [dict(type='LoadImageStrict'), dict(type='mmpretrain.ResizeEdge', scale=8),
            dict(type='mmpretrain.PackInputs')]


@pytest.fixture(scope='module')
def isic2019_root(tmp_path_factory):
    """20 images of 10 lesions (two each), in the official ISIC 2019 layout."""
    register_all_modules(init_default_scope=False)
    root = tmp_path_factory.mktemp('isic2019') / 'data'
    ids = [f'ISIC_{i:07d}' for i in range(20)]
    write_csv(str(root / 'ISIC_2019_Training_GroundTruth.csv'),
              [('image', ) + CLASSES] + [(i, *('1' if c == n % 3 else '0' for c in range(9)))
                                         for n, i in enumerate(ids)], line_ending='\r\n')
    write_csv(str(root / 'ISIC_2019_Training_Metadata.csv'),
              [('image', 'lesion_id')] + [(i, f'HAM_{n // 2}') for n, i in enumerate(ids)])
    write_images(str(root / 'ISIC_2019_Training_Input'), [f'{i}.jpg' for i in ids], seed=0,
                 size=16)
    return root


def _config(root, splits=('train', 'val', 'test')):
    def loader(split):
        return dict(dataset=dict(type='ISIC2019Dataset', data_root=str(root), split=split,
                                 pipeline=PIPELINE))
    return Config(dict(default_scope='medtrans',
                       **{f'{name}_dataloader': loader(split)
                          for name, split in zip(('train', 'val', 'test'), splits)}))


def test_a_clean_set_passes_with_the_lesion_check_applied(isic2019_root, tmp_path):
    report = check_dataset(_config(isic2019_root), work_dir=str(tmp_path))
    assert report.ok, report.format()
    record = json.loads((tmp_path / 'splits' / 'isic2019_seed0.json').read_text())
    assert record['meta']['grouped'] and sum(len(ids) for ids in record['splits'].values()) == 20
    assert sum(s.num_checked for s in report.splits) == 20
    assert all(s.num_checked == s.num_samples > 0 for s in report.splits)
    assert report.notes == []


def test_lesions_in_two_splits_and_bad_images_are_all_reported(isic2019_root, tmp_path):
    bad = isic2019_root.parent / 'bad'
    bad.mkdir()
    for path in isic2019_root.rglob('*'):
        target = bad / path.relative_to(isic2019_root)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            target.write_bytes(path.read_bytes())
    broken = bad / 'ISIC_2019_Training_Input' / 'ISIC_0000003.jpg'
    broken.write_bytes(broken.read_bytes()[:100])
    # A config that tests on every image ('all'), the training images included.
    report = check_dataset(_config(bad, splits=('train', 'val', 'all')))
    assert not report.ok
    problems = [str(p) for s in report.splits for p in s.problems]
    assert problems and all(str(broken) in p for p in problems)
    assert any('truncated JPEG' in p for p in problems)
    # Every lesion of train and val is also in the "test" split, which holds all lesions.
    in_train_or_val = set()
    for split in ('train', 'val'):
        ds = ISIC2019Dataset(str(bad), split=split)
        in_train_or_val.update(ds.get_data_info(i)['lesion_id'] for i in range(len(ds)))
    groups = [p.message.split('"')[1] for p in report.cross_split
              if p.message.startswith('patient/group')]
    assert len(in_train_or_val) == 9 and sorted(groups) == sorted(in_train_or_val)


def test_the_tool_gives_one_line_per_bad_row_and_checks_the_others(tmp_path, repo_root):
    root = tmp_path / 'aptos'
    ids = [f'{i:012x}' for i in range(20)]
    grades = [str(i % 5) for i in range(20)]
    grades[3], grades[8], grades[15] = '5', '2.0', '3.0'
    table = write_csv(str(root / 'train.csv'), [('id_code', 'diagnosis'), *zip(ids, grades)])
    write_images(str(root / 'train_images'), [f'{i}.png' for i in ids], seed=0, size=16)
    work_dir = tmp_path / 'work'
    run = subprocess.run(
        [sys.executable, 'tools/check_dataset.py', APTOS_CONFIG, '--data-root', str(root),
         '--work-dir', str(work_dir), '--workers', '0'],
        cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    bad = [f'  - APTOS 2019 label table "{table}" line {line}: diagnosis is {cell!r}; expected '
           'a grade 0, 1, 2, 3 or 4.' for line, cell in ((5, '5'), (10, '2.0'), (17, '3.0'))]
    # Said once, under the first split reading the table; the other 17 rows are checked.
    start = lines.index(f"[train] APTOS2019Dataset(data_root='{root}', split='train'): 12/12 "
                        'samples checked, 3 problem(s)')
    assert lines[start + 1:start + 5] == bad + [
        f"[val] APTOS2019Dataset(data_root='{root}', split='val'): 3/3 samples checked, 3 "
        'problem(s) of its tables or folders listed under [train]']
    assert sum('diagnosis is' in line for line in lines) == 3
    assert lines[-1] == 'Summary: 3 split(s), 17 samples checked, 3 problem(s): FAILED'
    # A division without the bad rows is not training's: no split record is written.
    assert ('  note: split record of APTOS2019Dataset not checked nor written: its bad rows and '
            'files are left out of this check') in lines
    assert not work_dir.exists()
