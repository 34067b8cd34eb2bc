"""Progress of long work: a rich bar on a terminal, occasional plain lines elsewhere."""
import io
import sys

from medtrans.utils.progress import track


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_every_n_items_and_none_without_a_log(monkeypatch):
    monkeypatch.setattr(sys, 'stderr', io.StringIO())
    lines = []
    assert list(track(range(5), 5, 'checking', log=lines.append, every=2)) == [0, 1, 2, 3, 4]
    assert lines == ['checking: 2/5', 'checking: 4/5']
    # By time: short work prints nothing.
    lines.clear()
    assert list(track(iter('abc'), None, 'reading', log=lines.append)) == ['a', 'b', 'c']
    assert lines == []
    assert list(track(range(3), 3, 'x', log=lines.append, interval_s=0,
                      line=lambda done: f'{done} done')) == [0, 1, 2]
    assert lines == ['1 done', '2 done', '3 done']
    assert sys.stderr.getvalue() == ''


def test_a_bar_on_a_terminal_instead_of_lines(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, 'stderr', terminal)
    lines = []
    assert list(track(range(4), 4, '[train] checking', log=lines.append, every=1)) == [0, 1, 2, 3]
    assert lines == []
    # The description as given (not read as rich markup).
    assert '[train] checking' in terminal.getvalue() and '4/4' in terminal.getvalue()
    # Without a log (a library call that shows nothing), or for one item: no bar.
    terminal.seek(0)
    terminal.truncate()
    assert list(track(range(4), 4, 'quiet')) == [0, 1, 2, 3]
    assert list(track(range(1), 1, 'one image', log=lines.append)) == [0]
    assert terminal.getvalue() == '' and lines == []
