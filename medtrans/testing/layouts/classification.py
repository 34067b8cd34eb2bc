"""Helpers of the classification layouts: tiny images and CSV tables."""
import csv
import os
import os.path as osp
from typing import List, Sequence

import cv2
import numpy as np

__all__ = ['write_images', 'write_csv']


def write_images(folder: str, names: Sequence[str], seed: int, size: int = 32,
                 grey: bool = False) -> List[str]:
    """Write random-noise images, one per file name, into ``folder`` (created).

    The format follows each name's extension; image ``i`` depends only on ``(seed, i)``.

    Args:
        folder (str): Output folder.
        names (Sequence[str]): File names, e.g. ``'a.png'``, ``'sub/b.jpg'``.
        seed (int): Seed of the pixels.
        size (int): Height and width. Defaults to 32.
        grey (bool): One channel instead of three. Defaults to False.

    Returns:
        list[str]: The paths written, in the order of ``names``.
    """
    paths = []
    for i, name in enumerate(names):
        path = osp.join(folder, name)
        os.makedirs(osp.dirname(path), exist_ok=True)
        shape = (size, size) if grey else (size, size, 3)
        pixels = np.random.RandomState([seed, i]).randint(0, 256, shape).astype(np.uint8)
        if not cv2.imwrite(path, pixels):
            raise OSError(f'could not write "{path}"')
        paths.append(path)
    return paths


def write_csv(path: str, rows: Sequence[Sequence[str]], line_ending: str = '\n') -> str:
    """Write rows (header first) as a CSV file, creating its folder.

    Args:
        path (str): Output file.
        rows (Sequence[Sequence[str]]): The header and the data rows.
        line_ending (str): ``'\\n'`` or ``'\\r\\n'`` (as some published tables have).
            Defaults to ``'\\n'``.

    Returns:
        str: ``path``.
    """
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    with open(path, 'w', newline='', encoding='utf-8') as f:
        csv.writer(f, lineterminator=line_ending).writerows(rows)
    return path
