import json
import os
import random
from collections import Counter

import pytest

from medtrans.datasets.splits import (
    GROUP_KEYS,
    group_key,
    load_or_create_split,
    record_split,
    split_ids,
)


def _ids(n):
    return [f'ISIC_{i:07d}' for i in range(n)]


def test_same_split_for_any_call_and_input_order():
    ids = _ids(200)
    first = split_ids(ids, {'train': 0.9, 'val': 0.1}, seed=3)
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    assert split_ids(shuffled, {'train': 0.9, 'val': 0.1}, seed=3) == first
    assert split_ids(tuple(ids), {'train': 0.9, 'val': 0.1}, seed=3) == first
    assert split_ids(ids, {'train': 0.9, 'val': 0.1}, seed=4)['val'] != first['val']


def test_sizes_follow_fractions_and_splits_partition_ids():
    ids = _ids(100)
    out = split_ids(ids, {'a': 0.7, 'b': 0.2, 'c': 0.1}, seed=0)
    assert list(out) == ['a', 'b', 'c']
    assert [len(v) for v in out.values()] == [70, 20, 10]
    assert sorted(sum(out.values(), [])) == ids
    assert all(v == sorted(v) for v in out.values())
    # Largest-remainder rounding: sizes always sum to the number of ids.
    assert [len(v) for v in split_ids(_ids(7), {'x': 0.5, 'y': 0.5}, seed=0).values()] == [4, 3]
    assert [len(v) for v in split_ids(_ids(10), {'x': 1.0, 'y': 0.0}, 0).values()] == [10, 0]


def test_groups_stay_whole_and_sizes_stay_close():
    rng = random.Random(0)
    ids, groups = [], []
    for patient in range(60):
        for k in range(rng.randint(1, 6)):
            ids.append(f'img_{patient}_{k}')
            groups.append(f'patient_{patient}')
    out = split_ids(ids, {'train': 0.8, 'val': 0.2}, seed=0, groups=groups)
    split_of = {i: name for name, members in out.items() for i in members}
    patient_splits = {}
    for id_, group in zip(ids, groups):
        patient_splits.setdefault(group, set()).add(split_of[id_])
    assert all(len(s) == 1 for s in patient_splits.values())
    assert sorted(sum(out.values(), [])) == sorted(ids)
    assert abs(len(out['val']) - 0.2 * len(ids)) <= 6  # within one group of the target
    assert out == split_ids(ids[::-1], {'train': 0.8, 'val': 0.2}, seed=0, groups=groups[::-1])


def test_stratify_preserves_label_proportions():
    rng = random.Random(0)
    ids = _ids(1000)
    labels = [rng.choices(['nevus', 'melanoma', 'bcc'], [0.7, 0.2, 0.1])[0] for _ in ids]
    out = split_ids(ids, {'train': 0.8, 'val': 0.1, 'test': 0.1}, seed=0, stratify=labels)
    assert [len(v) for v in out.values()] == [800, 100, 100]
    label_of = dict(zip(ids, labels))
    total = Counter(labels)
    for members in out.values():
        counts = Counter(label_of[i] for i in members)
        for label, n in total.items():
            # Exact up to rounding: each stratum is divided by the fractions on its own.
            assert abs(counts[label] - n * len(members) / len(ids)) <= 1


def test_stratify_with_groups_keeps_groups_whole():
    ids = _ids(300)
    groups = [i // 3 for i in range(300)]
    labels = ['a' if g % 4 else 'b' for g in groups]
    out = split_ids(ids, {'train': 0.5, 'val': 0.5}, seed=1, groups=groups, stratify=labels)
    split_of = {i: n for n, members in out.items() for i in members}
    for g in range(100):
        assert len({split_of[ids[3 * g + k]] for k in range(3)}) == 1
    val_b = sum(labels[ids.index(i)] == 'b' for i in out['val'])
    assert abs(val_b - 75 / 2) <= 3


@pytest.mark.parametrize('fractions, match', [
    ({'train': 0.8, 'val': 0.1}, 'sum to 1'),
    ({'train': 1.2, 'val': -0.2}, 'finite number >= 0'),
    ({}, 'at least one split'),
])
def test_bad_fractions_are_refused(fractions, match):
    with pytest.raises(ValueError, match=match):
        split_ids(_ids(10), fractions, seed=0)


def test_bad_ids_and_labels_are_refused():
    with pytest.raises(ValueError, match='unique'):
        split_ids(['a', 'b', 'a'], {'x': 1.0}, 0)
    with pytest.raises(ValueError, match='no ids'):
        split_ids([], {'x': 1.0}, 0)
    with pytest.raises(ValueError, match='groups has 2 entries for 3 ids'):
        split_ids(['a', 'b', 'c'], {'x': 1.0}, 0, groups=[1, 2])
    with pytest.raises(ValueError, match='stratify has 1 entries'):
        split_ids(['a', 'b', 'c'], {'x': 1.0}, 0, stratify=[1])


def _make(ids):
    return split_ids(ids, {'train': 0.75, 'val': 0.25}, seed=0)


META = dict(dataset='X', val_fraction=0.25, split_seed=0)


def test_split_file_none_is_not_saved(tmp_path):
    assert load_or_create_split(None, str(tmp_path), _ids(8), _make, META) == _make(_ids(8))
    assert os.listdir(tmp_path) == []


def test_split_file_written_atomically_then_read_back(tmp_path):
    data_root = tmp_path / 'data'
    data_root.mkdir()
    split_file = tmp_path / 'work' / 'nested' / 'split.json'
    ids = _ids(8)
    made = load_or_create_split(str(split_file), str(data_root), ids, _make, META)
    assert made == _make(ids)
    assert os.listdir(split_file.parent) == ['split.json']  # no temporary file left behind
    assert json.loads(split_file.read_text()) == dict(meta=META, splits=made)

    # Once recorded, the file is the authority, not a recomputation.
    record = json.loads(split_file.read_text())
    record['splits'] = {'train': ids[2:], 'val': ids[:2]}
    split_file.write_text(json.dumps(record))

    def must_not_run(_):
        raise AssertionError('the split was recomputed although the file exists')

    assert load_or_create_split(str(split_file), str(data_root), ids, must_not_run,
                                META) == record['splits']


@pytest.mark.parametrize('change, match', [
    (lambda r, ids: r['meta'].update(split_seed=1), 'made with split_seed=1'),
    (lambda r, ids: r['splits']['val'].append('ISIC_9999999'), 'not in the data'),
    (lambda r, ids: r['splits']['val'].pop(), 'does not cover 1 ids'),
    (lambda r, ids: r['splits']['val'].append(r['splits']['train'][0]), 'more than one split'),
    (lambda r, ids: r.pop('splits'), 'not a medtrans split record'),
])
def test_split_file_that_does_not_fit_is_refused(tmp_path, change, match):
    split_file = tmp_path / 'split.json'
    ids = _ids(8)
    load_or_create_split(str(split_file), None, ids, _make, META)
    record = json.loads(split_file.read_text())
    change(record, ids)
    split_file.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=match) as err:
        load_or_create_split(str(split_file), None, ids, _make, META)
    assert str(split_file) in str(err.value)


def test_split_file_not_json_is_refused(tmp_path):
    split_file = tmp_path / 'split.json'
    split_file.write_text('{"meta": ')
    with pytest.raises(ValueError, match='could not be read as JSON'):
        load_or_create_split(str(split_file), None, _ids(4), _make, META)


def test_split_file_inside_data_root_is_refused(tmp_path):
    data_root = tmp_path / 'data'
    (data_root / 'sub').mkdir(parents=True)
    for inside in (data_root / 'split.json', data_root / 'sub' / 'split.json'):
        with pytest.raises(ValueError, match='lies inside data_root') as err:
            load_or_create_split(str(inside), str(data_root), _ids(4), _make, META)
        assert str(inside) in str(err.value) and str(data_root) in str(err.value)
    # Also through a link that points into the data folder.
    (tmp_path / 'link').symlink_to(data_root)
    with pytest.raises(ValueError, match='lies inside data_root'):
        load_or_create_split(str(tmp_path / 'link' / 's.json'), str(data_root), _ids(4), _make,
                             META)
    assert sorted(os.listdir(data_root)) == ['sub']
    # A sibling folder whose name starts like the data folder is not inside it.
    load_or_create_split(str(tmp_path / 'data_splits' / 's.json'), str(data_root), _ids(4),
                         _make, META)


def test_record_split_writes_then_holds_later_runs_to_the_record(tmp_path):
    data_root = tmp_path / 'data'
    data_root.mkdir()
    record = tmp_path / 'work' / 'splits' / 'x.json'
    made = _make(_ids(8))
    assert record_split(str(record), made, META, str(data_root)) is True
    assert json.loads(record.read_text()) == dict(meta=META, splits=made)
    # The same split in another order is the same split.
    again = {name: ids[::-1] for name, ids in reversed(made.items())}
    assert record_split(str(record), again, META, str(data_root)) is False
    assert json.loads(record.read_text()) == dict(meta=META, splits=made)
    # One id moved: named, with where it is recorded and what to do.
    moved = dict(train=made['train'][1:], val=made['val'] + made['train'][:1])
    with pytest.raises(ValueError) as err:
        record_split(str(record), moved, META, str(data_root))
    assert (f'split record "{record}" assigns 1 ids to other splits than this run does (e.g. '
            f'"{made["train"][0]}" is in "train" there but in "val" here)') in str(err.value)
    assert f'give the dataset split_file="{record}"' in str(err.value)
    # Other ids or other arguments: the checks of load_or_create_split.
    with pytest.raises(ValueError, match='does not cover 1 ids'):
        record_split(str(record), dict(made, val=made['val'] + ['ISIC_9999999']), META)
    with pytest.raises(ValueError, match='made with split_seed=0, but this run asks for '
                                         'split_seed=1'):
        record_split(str(record), made, dict(META, split_seed=1))
    with pytest.raises(ValueError, match='lies inside data_root'):
        record_split(str(data_root / 'x.json'), made, META, str(data_root))


def test_group_key_is_the_first_group_key_present():
    assert GROUP_KEYS == ('patient_id', 'lesion_id', 'group')
    assert group_key(dict(patient_id='p1', group='g')) == 'patient_id'
    assert group_key(dict(lesion_id='HAM_1', group='g')) == 'lesion_id'
    assert group_key(dict(patient_id=None, group='g')) == 'group'
    assert group_key(dict(img_path='x')) is None


# Golden splits: the exact ids a fixed input gives today. A change to split_ids that moves any
# id would silently re-split every user's data (and invalidate recorded runs), so these fail.
GOLDEN_IDS = ['P3-c', 'P1-a', 'P7-a', 'P2-b', 'P5-a', 'P1-b', 'P4-a', 'P6-b', 'P2-a', 'P8-a',
              'P3-a', 'P6-a', 'P5-b', 'P9-a', 'P3-b', 'P7-b', 'P10-a', 'P4-b', 'P8-b', 'P9-b']
GOLDEN_GROUPS = ['P3', 'P1', 'P7', 'P2', 'P5', 'P1', 'P4', 'P6', 'P2', 'P8',
                 'P3', 'P6', 'P5', 'P9', 'P3', 'P7', 'P10', 'P4', 'P8', 'P9']
GOLDEN_LABELS = ['nev', 'mel', 'mel', 'nev', 'nev', 'mel', 'mel', 'nev', 'nev', 'nev',
                 'nev', 'nev', 'nev', 'nev', 'nev', 'mel', 'nev', 'mel', 'nev', 'nev']


def test_golden_isic_style_split():
    ids = ['ISIC_0000000', 'ISIC_0000001', 'ISIC_0000003', 'ISIC_0000004', 'ISIC_0000006',
           'ISIC_0000009', 'ISIC_0000012', 'ISIC_0000013', 'ISIC_0000016', 'ISIC_0000017',
           'ISIC_0000019', 'ISIC_0000022', 'ISIC_0000024', 'ISIC_0000025', 'ISIC_0000027',
           'ISIC_0000028', 'ISIC_0000031', 'ISIC_0000032', 'ISIC_0000034', 'ISIC_0000036']
    for seed, val in ((0, ['ISIC_0000024', 'ISIC_0000028']),
                      (1, ['ISIC_0000009', 'ISIC_0000022'])):
        out = split_ids(ids, {'train': 0.9, 'val': 0.1}, seed=seed)
        assert out == {'train': sorted(set(ids) - set(val)), 'val': val}


def test_golden_split():
    assert split_ids(GOLDEN_IDS, {'train': 0.8, 'val': 0.2}, seed=0) == {
        'train': ['P1-b', 'P10-a', 'P2-b', 'P3-a', 'P3-b', 'P3-c', 'P4-a', 'P4-b', 'P5-a',
                  'P5-b', 'P6-b', 'P7-a', 'P8-a', 'P8-b', 'P9-a', 'P9-b'],
        'val': ['P1-a', 'P2-a', 'P6-a', 'P7-b'],
    }


def test_golden_grouped_split():
    assert split_ids(GOLDEN_IDS, {'train': 0.8, 'val': 0.2}, seed=0,
                     groups=GOLDEN_GROUPS) == {
        'train': ['P10-a', 'P2-a', 'P2-b', 'P3-a', 'P3-b', 'P3-c', 'P4-a', 'P4-b', 'P6-a',
                  'P6-b', 'P7-a', 'P7-b', 'P8-a', 'P8-b', 'P9-a', 'P9-b'],
        'val': ['P1-a', 'P1-b', 'P5-a', 'P5-b'],
    }


def test_golden_stratified_split():
    assert split_ids(GOLDEN_IDS, {'train': 0.7, 'val': 0.15, 'test': 0.15}, seed=0,
                     stratify=GOLDEN_LABELS) == {
        'train': ['P1-b', 'P10-a', 'P2-a', 'P3-a', 'P4-a', 'P4-b', 'P5-a', 'P6-a', 'P6-b',
                  'P7-b', 'P8-a', 'P8-b', 'P9-a', 'P9-b'],
        'val': ['P1-a', 'P3-b', 'P5-b'],
        'test': ['P2-b', 'P3-c', 'P7-a'],
    }


def test_golden_grouped_stratified_split():
    assert split_ids(GOLDEN_IDS, {'train': 0.7, 'val': 0.3}, seed=0, groups=GOLDEN_GROUPS,
                     stratify=GOLDEN_LABELS) == {
        'train': ['P2-a', 'P2-b', 'P3-a', 'P3-b', 'P3-c', 'P4-a', 'P4-b', 'P6-a', 'P6-b',
                  'P7-a', 'P7-b', 'P9-a', 'P9-b'],
        'val': ['P1-a', 'P1-b', 'P10-a', 'P5-a', 'P5-b', 'P8-a', 'P8-b'],
    }
