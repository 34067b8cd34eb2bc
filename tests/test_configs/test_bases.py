"""No two files under ``configs/_base_/`` hold the same content: what several bases share has one
home, a base they inherit (``docs/configs.md``, config layout).

Content is what a file writes, read from its syntax tree, so comments and formatting do not
count:

- no two bases are the same file, or load to the same config;
- no value of 4 or more written scalars (strings, numbers, booleans), assigned at the top level
  or to a key of a top-level ``dict(...)`` (a model's ``backbone``, a loader's ``sampler``), is
  written in two bases. Smaller values may coincide: a metric, a sampler, a 2-class head;
- no top-level list of a base (a pipeline, the hooks) is another base's list with items added:
  a base that inherits a list inserts into ``_base_.<list>`` instead of restating it. Single
  transforms may coincide between lists (the study's flips and colour jitter are in both
  recipes).
"""
import ast
import itertools
import json
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from mmengine.config import Config

BASES_DIR = Path(__file__).resolve().parents[2] / 'configs' / '_base_'
BASES = sorted(BASES_DIR.rglob('*.py'))
MIN_SCALARS = 4


def _name(path: Path) -> str:
    return path.relative_to(BASES_DIR).as_posix()


def _assignments(path: Path) -> Iterator[Tuple[str, ast.expr]]:
    """(name, value) of each top-level ``name = value`` of the file, but ``_base_``."""
    for stmt in ast.parse(path.read_text('utf-8')).body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id != '_base_'):
            yield stmt.targets[0].id, stmt.value


def _scalars(node: ast.AST) -> int:
    return sum(isinstance(n, ast.Constant) and n.value is not None for n in ast.walk(node))


def _is_dict_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'dict')


def _values(path: Path) -> Iterator[Tuple[str, ast.expr]]:
    """(where, value): top-level values and the keyword values of top-level ``dict(...)``."""
    for name, value in _assignments(path):
        yield name, value
        if _is_dict_call(value):
            for keyword in value.keywords:
                if keyword.arg is not None:
                    yield f'{name}.{keyword.arg}', keyword.value


def _is_subsequence(short: List[str], long: List[str]) -> bool:
    items = iter(long)
    return all(item in items for item in short)


def test_bases_are_found():
    assert len(BASES) > 10, BASES_DIR


def test_no_two_bases_are_the_same_file():
    # The module's syntax tree: comments, blank lines and layout do not count.
    seen: Dict[str, str] = {}
    same = []
    for path in BASES:
        tree = ast.dump(ast.parse(path.read_text('utf-8')))
        if tree in seen:
            same.append((seen[tree], _name(path)))
        seen.setdefault(tree, _name(path))
    assert same == []


def test_no_two_bases_load_the_same():
    # A base that only renames another (inherits it and adds nothing) loads to its config.
    seen: Dict[str, str] = {}
    same = []
    for path in BASES:
        loaded = json.dumps(Config.fromfile(str(path)).to_dict(), sort_keys=True, default=repr)
        if loaded in seen:
            same.append((seen[loaded], _name(path)))
        seen.setdefault(loaded, _name(path))
    assert same == []


def test_no_setting_is_written_in_two_bases():
    places: Dict[str, List[Tuple[str, str]]] = {}
    for path in BASES:
        for where, value in _values(path):
            if _scalars(value) >= MIN_SCALARS:
                places.setdefault(ast.dump(value), []).append((_name(path), where))
    repeated = [found for found in places.values() if len({name for name, _ in found}) > 1]
    assert repeated == [], 'a value written in several bases belongs in a base they inherit'


def test_no_list_restates_another_bases_list():
    lists = [((_name(path), name), [ast.dump(item) for item in value.elts])
             for path in BASES for name, value in _assignments(path)
             if isinstance(value, ast.List) and len(value.elts) >= 2]
    restated = []
    for (a, items_a), (b, items_b) in itertools.combinations(lists, 2):
        (short, short_items), (long, long_items) = sorted(
            [(a, items_a), (b, items_b)], key=lambda found: len(found[1]))
        if a[0] != b[0] and _is_subsequence(short_items, long_items):
            restated.append((short, long))
    assert restated == [], 'insert into _base_.<list> instead of restating it'


@pytest.mark.parametrize('path', BASES, ids=_name)
def test_every_base_starts_with_a_comment(path):
    # What the base holds, for the reader who opens it from a leaf's `_base_` list.
    assert path.read_text('utf-8').startswith('# '), _name(path)
