"""The datasets' own utilities: strict reading of label tables and of the files they name.

So that every dataset family reports bad rows and missing files the same way, naming the file,
the line and what was expected: :func:`read_csv_table` (strict CSV label tables),
:func:`image_paths` (one image per row in one folder, checked both ways) and
:func:`find_missing` (many files, one listing per folder).
"""
import csv
import io
import os
import os.path as osp
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterator, List, Sequence, Set, Tuple

__all__ = ['CsvTable', 'read_csv_table', 'find_missing', 'image_paths']


@dataclass
class CsvTable:
    """A CSV label table whose header has been checked; rows are parsed on iteration.

    Args:
        path (str): The file.
        header (list[str]): Its column names.
        text (str): Its decoded content.
        what (str): What the table is, for messages (e.g. ``'APTOS 2019 label table'``).
    """

    path: str
    header: List[str]
    text: str
    what: str

    def column(self, name: str) -> int:
        """Index of a column named in the header."""
        return self.header.index(name)

    def error(self, line: int, message: str) -> ValueError:
        """An error about one line of the table, naming the file and the line."""
        return ValueError(f'{self.what} "{self.path}" line {line}: {message}.')

    def rows(self) -> Iterator[Tuple[int, List[str]]]:
        """The data rows as (line number, cells), blank lines skipped.

        Raises:
            ValueError: A row with another number of cells than the header, text the CSV
                parser refuses, or a table without data rows.
        """
        reader = csv.reader(io.StringIO(self.text, newline=''), strict=True)
        found = 0
        try:
            next(reader)
            for row in reader:
                if not row:
                    continue
                if len(row) != len(self.header):
                    raise self.error(reader.line_num,
                                     f'has {len(row)} cells {row[:12]}; expected '
                                     f'{len(self.header)}, one per column of {self.header}')
                found += 1
                yield reader.line_num, row
        except csv.Error as err:
            raise self.error(reader.line_num, f'is not valid CSV ({err})') from err
        if not found:
            raise ValueError(f'{self.what} "{self.path}" has a header but no rows; expected one '
                             'row per sample.')


def read_csv_table(path: str, required: Sequence[str], what: str = 'label table',
                   layout: str = '', other_columns: bool = True) -> CsvTable:
    """Open a CSV table and check its header.

    The file is read as UTF-8 (a byte order mark is allowed), with any line endings (LF, CRLF).
    Columns are found by name, so their order does not matter; every name in ``required`` must
    be in the header exactly once.

    Args:
        path (str): The file.
        required (Sequence[str]): Column names that must be present.
        what (str): What the table is, for messages. Defaults to ``'label table'``.
        layout (str): The expected layout, shown when the file is missing. Defaults to ''.
        other_columns (bool): Whether columns besides ``required`` are allowed (and left to the
            caller). Defaults to True.

    Returns:
        CsvTable: The table; iterate :meth:`CsvTable.rows` for its rows.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: Not a file, not UTF-8, empty, or a header without the required columns,
            with a repeated column name, or (``other_columns=False``) with other columns.
    """
    if not osp.exists(path):
        raise FileNotFoundError(f'{what} "{path}" not found' +
                                (f'; expected the layout:\n{layout}' if layout else '.'))
    if not osp.isfile(path):
        raise ValueError(f'{what} "{path}" is not a file; expected a CSV file.')
    with open(path, 'rb') as f:
        content = f.read()
    try:
        text = content.decode('utf-8-sig')
    except UnicodeDecodeError as err:
        line = content[:err.start].count(b'\n') + 1
        raise ValueError(f'{what} "{path}" line {line}: not UTF-8 text ({err.reason} at byte '
                         f'{err.start}); expected a UTF-8 CSV file.') from err
    try:
        header = next(csv.reader(io.StringIO(text, newline=''), strict=True), None)
    except csv.Error as err:
        raise ValueError(f'{what} "{path}" line 1: is not valid CSV ({err}).') from err
    if not header:
        raise ValueError(f'{what} "{path}" is empty; expected a header with the columns '
                         f'{list(required)} and one row per sample.')
    repeated = sorted(name for name, n in Counter(header).items() if n > 1)
    if repeated:
        raise ValueError(f'{what} "{path}" line 1: the header repeats the columns {repeated}; '
                         'expected each column once.')
    missing = [name for name in required if name not in header]
    if missing:
        raise ValueError(f'{what} "{path}" line 1: the header {header[:12]} lacks the columns '
                         f'{missing}; expected the columns {list(required)}.')
    unknown = [name for name in header if name not in required]
    if unknown and not other_columns:
        raise ValueError(f'{what} "{path}" line 1: the header has the unknown columns '
                         f'{unknown[:12]}; expected only the columns {list(required)}.')
    return CsvTable(path=path, header=header, text=text, what=what)


def find_missing(paths: Sequence[str]) -> List[int]:
    """Indices of the paths that are not existing regular files (symlinks followed).

    Each folder is listed once, so that checking many files in few folders costs a directory
    read each rather than a ``stat`` per file.

    Args:
        paths (Sequence[str]): File paths.

    Returns:
        list[int]: Indices into ``paths`` of the missing ones, in order.
    """
    listed: Dict[str, Set[str]] = {}
    missing = []
    for i, path in enumerate(paths):
        folder, name = osp.split(path)
        if folder not in listed:
            try:
                with os.scandir(folder or '.') as entries:
                    listed[folder] = {e.name for e in entries if e.is_file()}
            except (FileNotFoundError, NotADirectoryError):
                listed[folder] = set()
        if name not in listed[folder]:
            missing.append(i)
    return missing


def image_paths(table: CsvTable, rows: Sequence[Tuple[int, str]], folder: str,
                suffix: str) -> List[str]:
    """The image file of each row of a label table, as ``<folder>/<id><suffix>``, checked.

    Every id must be a plain file name stem (not empty, no surrounding spaces, no path
    separator) and appear once; every image must exist; and every ``*<suffix>`` file in
    ``folder`` must have a row (hidden files, whose names start with ``.``, are not images).

    Args:
        table (CsvTable): The table the rows come from, named in errors.
        rows (Sequence[tuple[int, str]]): (line, id) of each row.
        folder (str): The image folder.
        suffix (str): The file name suffix after the id, e.g. ``'.png'``.

    Returns:
        list[str]: The image paths, in the order of ``rows``.

    Raises:
        FileNotFoundError: The folder or an image is missing.
        ValueError: A malformed or repeated id, or an image without a row.
    """
    first_line: Dict[str, int] = {}
    for line, sample_id in rows:
        if (not sample_id or sample_id != sample_id.strip() or '/' in sample_id
                or '\\' in sample_id or sample_id in ('.', '..')):
            raise table.error(line, f'the image id {sample_id!r} is not a file name stem; '
                                    f'expected the name of an image <id>{suffix} in "{folder}"')
        if sample_id in first_line:
            raise table.error(line, f'repeats the image id "{sample_id}" of line '
                                    f'{first_line[sample_id]}; expected each image once')
        first_line[sample_id] = line
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder "{folder}" not found; expected the images of '
                                f'{table.what} "{table.path}" there, as <id>{suffix}.')
    paths = [osp.join(folder, sample_id + suffix) for _, sample_id in rows]
    missing = find_missing(paths)
    if missing:
        line, sample_id = rows[missing[0]]
        raise FileNotFoundError(
            f'{table.what} "{table.path}" line {line}: image "{paths[missing[0]]}" not found; '
            f'expected <id>{suffix} in "{folder}" for every row ({len(missing)} of {len(rows)} '
            f'images missing, e.g. {[osp.basename(paths[i]) for i in missing[:5]]}).')
    with os.scandir(folder) as entries:
        unlabelled = sorted(e.name for e in entries if e.name.endswith(suffix)
                            and not e.name.startswith('.') and e.is_file()
                            and e.name[:-len(suffix)] not in first_line)
    if unlabelled:
        raise ValueError(f'image "{osp.join(folder, unlabelled[0])}" has no row in {table.what} '
                         f'"{table.path}"; expected a label for every *{suffix} image there '
                         f'({len(unlabelled)} unlabelled, e.g. {unlabelled[:5]}).')
    return paths
