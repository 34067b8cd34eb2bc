"""Progress of long work outside training: a bar on a terminal, an occasional line elsewhere.

Dataset checks, pre-resizing, feature extraction and the k-NN memory go through
:func:`track`. On a terminal it draws a `rich <https://rich.readthedocs.io>`_ progress bar (rich
comes with MMEngine) on stderr; written to a file or a pipe (a log, a CI job, a test), it prints
a plain line now and then, never a bar redrawn into the log.
"""
import sys
import time
from typing import Callable, Iterable, Iterator, Optional, TypeVar

__all__ = ['track', 'is_terminal', 'to_current_logger']

T = TypeVar('T')

#: Seconds between two plain progress lines, unless a count is given.
PLAIN_INTERVAL_S = 30.0


def is_terminal() -> bool:
    """Whether stderr, where the bars are drawn, is a terminal."""
    isatty = getattr(sys.stderr, 'isatty', None)
    return bool(isatty and isatty())


def to_current_logger(line: str) -> None:
    """Log a plain progress line to MMEngine's current logger (a ``log`` for :func:`track`)."""
    from mmengine.logging import print_log
    print_log(line, logger='current')


def track(items: Iterable[T],
          total: Optional[int],
          description: str,
          log: Optional[Callable[[str], None]] = None,
          every: int = 0,
          line: Optional[Callable[[int], str]] = None,
          live: Optional[bool] = None,
          interval_s: float = PLAIN_INTERVAL_S) -> Iterator[T]:
    """Iterate over ``items``, showing how far it got.

    Args:
        items (Iterable): What to iterate over; each item counts one.
        total (int, optional): How many items there are (None: unknown).
        description (str): What is done, shown left of the bar and in the plain lines.
        log (Callable[[str], None], optional): Where the plain lines go; None shows no plain
            line. Defaults to None.
        every (int): A plain line every this many items; 0 gives one every ``interval_s``
            seconds instead, so that short work prints none. Defaults to 0.
        line (Callable[[int], str], optional): The plain line after a count of items. Defaults
            to None: ``'<description>: <done>/<total>'``.
        live (bool, optional): Draw a rich bar on stderr (and no plain lines). None: where
            stderr is a terminal, ``log`` is given and there is more than one item. Defaults to
            None.
        interval_s (float): Seconds between plain lines when ``every`` is 0. Defaults to 30.

    Yields:
        The items, in order.
    """
    if live is None:
        live = log is not None and (total is None or total > 1) and is_terminal()
    if live:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        # The description as given: '[train]' is not rich markup.
        columns = (TextColumn('{task.description}', markup=False), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
            yield from progress.track(items, total=total, description=description)
        return
    line = line or (lambda done: f'{description}: {done}' + (f'/{total}' if total else ''))
    last = time.monotonic()
    for done, item in enumerate(items, 1):
        yield item
        if log is None:
            continue
        if every > 0:
            due = done % every == 0
        else:
            due = time.monotonic() - last >= interval_s
        if due:
            log(line(done))
            last = time.monotonic()
