"""The entry points of one group, on every Python medtrans supports."""
from importlib.metadata import EntryPoint, entry_points
from typing import List

__all__ = ['entry_points_of']


def entry_points_of(group: str) -> List[EntryPoint]:
    """The installed packages' entry points of ``group`` (Python 3.9's ``entry_points()`` is a
    dict of groups, later ones select by keyword)."""
    eps = entry_points()
    return list(eps.select(group=group) if hasattr(eps, 'select') else eps.get(group, []))
