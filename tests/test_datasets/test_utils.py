"""The datasets' own utilities: strict CSV label tables and the files they name."""
import os

import pytest

from medtrans.datasets.utils import (
    DataProblems,
    MissingFiles,
    collect_problems,
    find_missing,
    image_paths,
    read_csv_table,
)
from medtrans.testing import write_csv, write_images


def test_csv_table_reads_crlf_bom_quotes_and_any_column_order(tmp_path):
    path = tmp_path / 't.csv'
    path.write_bytes(b'\xef\xbb\xbfb,"a"\r\n"x, y",1\r\n\r\nz,2\r\n')
    table = read_csv_table(str(path), ('a', 'b'))
    assert table.header == ['b', 'a'] and table.column('a') == 1
    assert list(table.rows()) == [(2, ['x, y', '1']), (4, ['z', '2'])]


@pytest.mark.parametrize('content, required, kwargs, error, match', [
    (b'', ('a', ), {}, ValueError, 'is empty; expected a header with the columns'),
    (b'a,b\n1,2\n\xff\n', ('a', ), {}, ValueError, 'line 3: not UTF-8 text'),
    (b'a,a\n1,2\n', ('a', ), {}, ValueError, r"line 1: the header repeats the columns \['a'\]"),
    (b'a;b\n1;2\n', ('a', 'b'), {}, ValueError, r"lacks the columns \['a', 'b'\]"),
    (b'a,b,c\n1,2,3\n', ('a', 'b'), dict(other_columns=False), ValueError,
     r"the unknown columns \['c'\]"),
])
def test_bad_csv_headers_name_the_file(tmp_path, content, required, kwargs, error, match):
    path = tmp_path / 'labels.csv'
    path.write_bytes(content)
    with pytest.raises(error, match=match) as info:
        read_csv_table(str(path), required, 'toy table', **kwargs)
    assert f'toy table "{path}"' in str(info.value)


@pytest.mark.parametrize('content, match', [
    (b'a,b\n1,2\n3\n', r"line 3: has 1 cells \['3'\]; expected 2, one per column of"),
    (b'a,b\n1,2,3\n', 'line 2: has 3 cells'),
    (b'a,b\n', 'has a header but no rows'),
    (b'a,b\n\n\n', 'has a header but no rows'),
    (b'a,b\n"1,2\n', r'line 2: is not valid CSV \(unexpected end of data\)'),
])
def test_bad_csv_rows_name_the_file_and_line(tmp_path, content, match):
    path = tmp_path / 'labels.csv'
    path.write_bytes(content)
    table = read_csv_table(str(path), ('a', 'b'), 'toy table')
    with pytest.raises(ValueError, match=match) as info:
        list(table.rows())
    assert f'toy table "{path}"' in str(info.value)


def test_missing_or_non_file_tables(tmp_path):
    with pytest.raises(FileNotFoundError, match='toy table ".*nope.csv" not found; expected the '
                                                'layout:\nLAYOUT'):
        read_csv_table(str(tmp_path / 'nope.csv'), ('a', ), 'toy table', layout='LAYOUT')
    os.symlink(tmp_path / 'gone.csv', tmp_path / 'link.csv')
    with pytest.raises(FileNotFoundError, match='link.csv" not found'):
        read_csv_table(str(tmp_path / 'link.csv'), ('a', ))
    (tmp_path / 'dir.csv').mkdir()
    with pytest.raises(ValueError, match='dir.csv" is not a file; expected a CSV file'):
        read_csv_table(str(tmp_path / 'dir.csv'), ('a', ))


def test_find_missing_lists_each_folder_once(tmp_path):
    (tmp_path / 'f').mkdir()
    (tmp_path / 'f' / 'a.png').write_bytes(b'x')
    (tmp_path / 'f' / 'dir.png').mkdir()
    os.symlink(tmp_path / 'f' / 'a.png', tmp_path / 'f' / 'link.png')
    os.symlink(tmp_path / 'f' / 'gone.png', tmp_path / 'f' / 'dangling.png')
    names = ['a.png', 'dir.png', 'link.png', 'dangling.png', 'b.png']
    paths = [str(tmp_path / 'f' / n) for n in names] + [str(tmp_path / 'nofolder' / 'a.png')]
    assert find_missing(paths) == [1, 3, 4, 5]


def test_image_paths_check_both_ways(tmp_path):
    table_path = write_csv(str(tmp_path / 'labels.csv'), [('id', 'y'), ('a', '0'), ('b', '1')])
    table = read_csv_table(table_path, ('id', 'y'), 'toy table')
    folder = tmp_path / 'img'
    write_images(str(folder), ['a.png', 'b.png'], seed=0)
    (folder / '.b.png').write_bytes(b'')  # hidden: not an image of the set
    (folder / 'notes.txt').write_bytes(b'')  # another suffix: not an image of the set
    assert image_paths(table, [(2, 'a'), (3, 'b')], str(folder), '.png') == [
        str(folder / 'a.png'), str(folder / 'b.png')]
    with pytest.raises(ValueError, match=r'labels.csv" line 3: repeats the image id "a" of line 2'):
        image_paths(table, [(2, 'a'), (3, 'a')], str(folder), '.png')
    for bad in ('', ' a', 'x/a', '..'):
        with pytest.raises(ValueError, match='line 2: the image id .* is not a file name stem'):
            image_paths(table, [(2, bad)], str(folder), '.png')
    with pytest.raises(FileNotFoundError, match=r'line 3: image ".*c.png" not found; expected '
                                                r'<id>.png in ".*img" for every row\.$'):
        image_paths(table, [(2, 'a'), (3, 'c'), (4, 'b')], str(folder), '.png')
    with pytest.raises(ValueError, match=r'image ".*b.png" has no row in toy table ".*labels.csv"'):
        image_paths(table, [(2, 'a')], str(folder), '.png')
    with pytest.raises(FileNotFoundError, match='image folder ".*nope" not found'):
        image_paths(table, [(2, 'a')], str(tmp_path / 'nope'), '.png')



def test_every_bad_row_is_named_at_once_or_collected(tmp_path):
    table_path = str(tmp_path / 'labels.csv')
    folder = tmp_path / 'img'
    write_images(str(folder), ['a.png', 'b.png'], seed=0)

    def read(rows):
        write_csv(table_path, [('id', 'y')] + rows)
        table = read_csv_table(table_path, ('id', 'y'), 'toy table')
        return image_paths(table, [(line, row[0]) for line, row in table.rows()], str(folder),
                           '.png')

    def row(line, message):
        return f'toy table "{table_path}" line {line}: {message}.'

    def missing(line, name):
        return row(line, f'image "{folder / name}" not found; expected <id>.png in "{folder}" '
                         'for every row')

    unlabelled = (f'image "{folder / "b.png"}" has no row in toy table "{table_path}"; '
                  'expected a label for every *.png image there.')
    bad = [('a', '0'), ('c', '1', 'x'), ('a', '1'), ('d', '0'), ('e', '1')]
    expected = [row(3, "has 3 cells ['c', '1', 'x']; expected 2, one per column of ['id', 'y']"),
                row(4, 'repeats the image id "a" of line 2; expected each image once'),
                missing(5, 'd.png'), missing(6, 'e.png'), unlabelled]
    # Collected: every problem, in the order found, and the bad rows left out.
    with collect_problems() as found:
        paths = read(bad)
    assert [str(p) for p in found] == expected
    assert [type(p) for p in found] == [ValueError, ValueError, FileNotFoundError,
                                        FileNotFoundError, ValueError]
    assert paths == [str(folder / 'a.png'), None, None, None]
    # Refused: the rows' cell counts when the rows are read, the rest together, in one error.
    with pytest.raises(ValueError) as info:
        read(bad)
    assert str(info.value) == expected[0]
    with pytest.raises(DataProblems) as info:
        read([r for r in bad if len(r) == 2])
    assert not isinstance(info.value, FileNotFoundError)
    assert str(info.value).splitlines() == [
        f'4 problems in toy table "{table_path}"; expected none (tools/check_dataset.py CONFIG '
        "reports every problem of a config's data):",
        '  - ' + row(3, 'repeats the image id "a" of line 2; expected each image once'),
        '  - ' + missing(4, 'd.png'), '  - ' + missing(5, 'e.png'), '  - ' + unlabelled]
    (folder / 'b.png').unlink()
    with pytest.raises(MissingFiles) as info:
        read([('a', '0'), ('d', '0'), ('e', '1')])
    assert isinstance(info.value, FileNotFoundError) and len(info.value.problems) == 2
