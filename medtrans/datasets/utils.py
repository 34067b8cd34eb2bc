"""The datasets' own utilities: strict reading of label tables and of the files they name.

So that every dataset family reports bad rows and missing files the same way, naming the file,
the line and what was expected: :func:`read_csv_table` (strict CSV label tables),
:func:`image_paths` (one image per row in one folder, checked both ways) and
:func:`find_missing` (many files, one listing per folder).

A bad row is noted (:meth:`CsvTable.reject`) and reading goes on, so that one error names every
bad row of a table (:func:`settle_problems`): a dataset refuses its table naming all of its bad
rows, never only the first. Within :func:`collect_problems` (what ``check_dataset`` does) the
bad rows are skipped and their problems handed to the caller instead, so that the rest of the
data can still be checked; training never skips a row.
"""
import csv
import io
import os
import os.path as osp
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

__all__ = ['CsvTable', 'read_csv_table', 'find_missing', 'image_paths', 'DataProblems',
           'MissingFiles', 'collect_problems', 'problems_collected', 'settle_problems']

#: Where the problems go while :func:`collect_problems` is active (None: refuse them).
_COLLECTED: ContextVar[Optional[List[Exception]]] = ContextVar('medtrans_data_problems',
                                                               default=None)
#: The problems an error message lists; :attr:`DataProblems.problems` holds them all.
_LISTED = 20


class DataProblems(ValueError):
    """Several problems of a dataset's files, refused together.

    Args:
        problems (Sequence[Exception]): The problems, each naming its file (and line).
        where (str): What holds them, e.g. ``'APTOS 2019 label table "train.csv"'``.
    """

    def __init__(self, problems: Sequence[Exception], where: str) -> None:
        self.problems = list(problems)
        listed = [f'  - {problem}' for problem in self.problems[:_LISTED]]
        if len(self.problems) > _LISTED:
            listed.append(f'  ... and {len(self.problems) - _LISTED} more')
        super().__init__(
            f'{len(self.problems)} problems in {where}; expected none (tools/check_dataset.py '
            'CONFIG reports every problem of a config\'s data):\n' + '\n'.join(listed))


class MissingFiles(DataProblems, FileNotFoundError):
    """:class:`DataProblems` that are all missing files."""


@contextmanager
def collect_problems() -> Iterator[List[Exception]]:
    """Collect the problems of bad table rows instead of refusing the table.

    Within it, the table readers of the datasets skip every bad row (and the rows whose files
    are missing) and append its problem to the list yielded; a dataset is then built from the
    good rows. For tools that report problems (``check_dataset``), never for training: a
    dataset built within it may lack rows.

    Yields:
        list[Exception]: The problems, each naming its file and line, as they are found.
    """
    problems: List[Exception] = []
    token = _COLLECTED.set(problems)
    try:
        yield problems
    finally:
        _COLLECTED.reset(token)


def problems_collected() -> bool:
    """Whether problems were found within :func:`collect_problems`: the dataset being built
    lacks their rows and files."""
    return bool(_COLLECTED.get())


def settle_problems(problems: Sequence[Exception], where: str) -> None:
    """Refuse the problems found, all at once; or hand them on within :func:`collect_problems`.

    Args:
        problems (Sequence[Exception]): Problems found (the rows concerned were skipped).
        where (str): What holds them, for the message of several.

    Raises:
        Exception: The problem itself when there is one; :class:`MissingFiles` when there are
            several and all are missing files, else :class:`DataProblems`.
    """
    if not problems:
        return
    collected = _COLLECTED.get()
    if collected is not None:
        collected.extend(problems)
        return
    if len(problems) == 1:
        raise problems[0]
    kind = (MissingFiles if all(isinstance(p, FileNotFoundError) for p in problems)
            else DataProblems)
    raise kind(problems, where)


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
    problems: List[Exception] = field(default_factory=list, repr=False)
    rejected_ids: Set[str] = field(default_factory=set, repr=False)

    def column(self, name: str) -> int:
        """Index of a column named in the header."""
        return self.header.index(name)

    def error(self, line: int, message: str, kind: type = ValueError) -> Exception:
        """An error about one line of the table, naming the file and the line."""
        return kind(f'{self.what} "{self.path}" line {line}: {message}.')

    def reject(self, line: int, message: str, kind: type = ValueError,
               sample_id: Optional[str] = None) -> None:
        """Note a bad row, which the caller then skips; :meth:`settle` refuses them all.

        Args:
            line (int): The row's line in the file.
            message (str): What is wrong and what was expected.
            kind (type): The exception class: ``FileNotFoundError`` for a file the row names
                that is missing. Defaults to ``ValueError``.
            sample_id (str, optional): The image id the row gives, so that :func:`image_paths`
                does not report its image as one without a row. Defaults to None.
        """
        self.problems.append(self.error(line, message, kind))
        if sample_id is not None:
            self.rejected_ids.add(sample_id)

    def settle(self) -> None:
        """Refuse the rows noted so far, all in one error (see :func:`settle_problems`).

        :meth:`rows` settles when its last row has been handled, so that a reader that
        rejects rows while iterating them need not.
        """
        problems, self.problems = self.problems, []
        settle_problems(problems, f'{self.what} "{self.path}"')

    def rows(self) -> Iterator[Tuple[int, List[str]]]:
        """The data rows as (line number, cells), blank lines skipped.

        A row with another number of cells than the header is rejected (not yielded); after the
        last row, the rows rejected (here or by the caller while iterating) are settled.

        Raises:
            ValueError: Text the CSV parser refuses, a table without data rows, or the rows
                rejected (:meth:`settle`).
        """
        reader = csv.reader(io.StringIO(self.text, newline=''), strict=True)
        found = 0
        try:
            next(reader)
            for row in reader:
                if not row:
                    continue
                found += 1
                if len(row) != len(self.header):
                    self.reject(reader.line_num, f'has {len(row)} cells {row[:12]}; expected '
                                                 f'{len(self.header)}, one per column of '
                                                 f'{self.header}')
                    continue
                yield reader.line_num, row
        except csv.Error as err:
            raise self.error(reader.line_num, f'is not valid CSV ({err})') from err
        if not found:
            raise ValueError(f'{self.what} "{self.path}" has a header but no rows; expected one '
                             'row per sample.')
        self.settle()


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
                suffix: str) -> List[Optional[str]]:
    """The image file of each row of a label table, as ``<folder>/<id><suffix>``, checked.

    Every id must be a plain file name stem (not empty, no surrounding spaces, no path
    separator) and appear once; every image must exist; and every ``*<suffix>`` file in
    ``folder`` must have a row (hidden files, whose names start with ``.``, are not images; the
    images of rows rejected with their ``sample_id`` have one). Every problem is found before
    they are settled together (:meth:`CsvTable.settle`).

    Args:
        table (CsvTable): The table the rows come from, named in errors.
        rows (Sequence[tuple[int, str]]): (line, id) of each row.
        folder (str): The image folder.
        suffix (str): The file name suffix after the id, e.g. ``'.png'``.

    Returns:
        list[str | None]: The image paths, in the order of ``rows``; None for a bad row, which
        only :func:`collect_problems` lets through.

    Raises:
        FileNotFoundError: The folder or an image is missing.
        ValueError: A malformed or repeated id, or an image without a row.
    """
    first_line: Dict[str, int] = {}
    paths: List[Optional[str]] = []
    for line, sample_id in rows:
        if (not sample_id or sample_id != sample_id.strip() or '/' in sample_id
                or '\\' in sample_id or sample_id in ('.', '..')):
            table.reject(line, f'the image id {sample_id!r} is not a file name stem; '
                               f'expected the name of an image <id>{suffix} in "{folder}"')
            paths.append(None)
        elif sample_id in first_line:
            table.reject(line, f'repeats the image id "{sample_id}" of line '
                               f'{first_line[sample_id]}; expected each image once')
            paths.append(None)
        else:
            first_line[sample_id] = line
            paths.append(osp.join(folder, sample_id + suffix))
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder "{folder}" not found; expected the images of '
                                f'{table.what} "{table.path}" there, as <id>{suffix}.')
    named = [i for i, path in enumerate(paths) if path is not None]
    for i in find_missing([paths[i] for i in named]):
        row = named[i]
        table.reject(rows[row][0], f'image "{paths[row]}" not found; expected <id>{suffix} in '
                                   f'"{folder}" for every row', FileNotFoundError)
        paths[row] = None
    with os.scandir(folder) as entries:
        unlabelled = sorted(e.name for e in entries if e.name.endswith(suffix)
                            and not e.name.startswith('.') and e.is_file()
                            and e.name[:-len(suffix)] not in first_line
                            and e.name[:-len(suffix)] not in table.rejected_ids)
    table.problems.extend(
        ValueError(f'image "{osp.join(folder, name)}" has no row in {table.what} '
                   f'"{table.path}"; expected a label for every *{suffix} image there.')
        for name in unlabelled)
    table.settle()
    return paths
