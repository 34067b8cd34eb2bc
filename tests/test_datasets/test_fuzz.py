"""Fuzz every registered dataset class through its files.

Each dataset class in ``medtrans.registry.DATASETS`` has a function that writes a tiny valid
layout of it, found by class name in ``medtrans.testing.MEDTRANS_LAYOUTS`` or a plugin's
``medtrans.synthetic_layouts`` entry point (see ``medtrans/testing/__init__.py``); a
registered class without one fails ``test_every_registered_dataset_joins_the_fuzz_tests``.
For every file kind the layout lists (images, masks, CSV label tables, DICOM and HDF5 files) each
case below corrupts one file, chosen by an RNG seeded from the case id, and loads every sample
with the layout's loading transforms. The case passes when:

* the dataset (or a sample) raises one of ``EXPECTED_ERRORS`` whose message names the corrupted
  file, or
* every sample loads, nothing is dropped or added, every target (mask, label) equals the one of
  the uncorrupted layout, and the image is as the corruption says (``exact``: the same pixels,
  ``shape``: same shape and dtype, ``any``: loaded).

Corruptions marked ``load`` must load (a lossless re-encoding such as a 16-bit PNG, an RGBA PNG,
or a PNG under a ``.jpg`` name: the decoder goes by the content, not the extension); those marked
``reject`` must raise (an empty or truncated file); ``either`` allows both.
"""
import ast
import csv
import io
import os
import os.path as osp
import struct
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import cv2
import h5py
import numpy as np
import pydicom
import pytest
from mmengine.dataset import BaseDataset
from mmengine.registry import DefaultScope
from PIL import Image

from medtrans.datasets import ISIC2018Task1Dataset
from medtrans.registry import DATASETS, TRANSFORMS
from medtrans.setup_env import register_all_modules
from medtrans.testing import (
    ENTRY_POINT_GROUP,
    MEDTRANS_LAYOUTS,
    SyntheticLayout,
    find_layout,
    isic2018_task1_layout,
    plugin_layouts,
    write_synthetic_layout,
)

#: What a corrupted file may raise; the message must name the file.
EXPECTED_ERRORS = (ValueError, FileNotFoundError)


@dataclass(frozen=True)
class Corruption:
    """One way to damage a file.

    Args:
        name (str): Shown in the test id.
        apply (Callable[[str, np.random.RandomState], None]): Damages the file in place.
        outcome (str): ``'load'``, ``'reject'`` or ``'either'`` (see the module docstring).
        image (str): How a loaded sample's image compares with the uncorrupted one:
            ``'exact'``, ``'shape'`` or ``'any'``. Defaults to ``'shape'``.
        variants (int): Cases with different seeds. Defaults to 1.
    """

    name: str
    apply: Callable[[str, np.random.RandomState], None]
    outcome: str
    image: str = 'shape'
    variants: int = 1


# ---- byte-level damage, any kind of file ------------------------------------------------------

def _read(path: str) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def _write(path: str, data: bytes) -> None:
    with open(path, 'wb') as f:
        f.write(data)


def _empty(path, rng):
    _write(path, b'')


def _random_bytes(path, rng):
    _write(path, rng.bytes(rng.randint(1, 4096)))


def _zero_fill(path, rng):
    _write(path, bytes(len(_read(path))))


def _text(path, rng):
    _write(path, b'this is not an image\n')


def _truncate(path, rng):
    data = _read(path)
    _write(path, data[:rng.randint(1, len(data))])


def _truncate_end(path, rng):
    data = _read(path)
    _write(path, data[:len(data) - rng.randint(1, 4)])


def _bit_flips(path, rng):
    data = bytearray(_read(path))
    for pos in rng.randint(0, len(data), rng.randint(1, 9)):
        data[pos] ^= 1 << rng.randint(8)
    _write(path, bytes(data))


def _overwrite_span(path, rng):
    data = bytearray(_read(path))
    start = rng.randint(len(data))
    length = rng.randint(1, 64)
    data[start:start + length] = rng.bytes(length)
    _write(path, bytes(data))


def _prepend_garbage(path, rng):
    _write(path, rng.bytes(rng.randint(1, 64)) + _read(path))


def _append_garbage(path, rng):
    _write(path, _read(path) + rng.bytes(rng.randint(1, 64)))


def _missing(path, rng):
    os.remove(path)


def _directory(path, rng):
    os.remove(path)
    os.mkdir(path)


def _dangling_symlink(path, rng):
    os.remove(path)
    os.symlink(path + '.gone', path)


def _oversized_header(path, rng):
    """Declare 65000x65000 pixels (over OpenCV's 2^30 limit) in a JPEG's SOF or a PNG's IHDR."""
    data = bytearray(_read(path))
    if data[:2] == b'\xff\xd8':
        pos = 2
        while data[pos + 1] not in (0xC0, 0xC1, 0xC2):  # walk the segments up to the frame
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], 'big')
        data[pos + 5:pos + 9] = struct.pack('>HH', 65000, 65000)
    else:
        data = bytearray(cv2.imencode('.png', cv2.imread(path, cv2.IMREAD_UNCHANGED))[1])
        data[16:24] = struct.pack('>II', 65000, 65000)
        data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
    _write(path, bytes(data))


# ---- re-encodings of the stored pixels --------------------------------------------------------

def _reencode(ext: str, convert=lambda raw, rng: raw, params: Tuple[int, ...] = ()):
    """Rewrite a file, under its own name, as ``ext`` holding ``convert(stored pixels)``."""
    def apply(path, rng):
        raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        ok, buf = cv2.imencode(ext, convert(raw, rng), list(params))
        assert ok, f'could not encode {path} as {ext}'
        _write(path, buf.tobytes())
    return apply


def _save_pil(mode: str):
    """Rewrite a mask as a PNG of PIL mode ``mode`` (LA, P, 1), which OpenCV cannot write."""
    def apply(path, rng):
        raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        img = Image.fromarray(raw if raw.ndim == 2 else cv2.cvtColor(raw, cv2.COLOR_BGR2RGB))
        buf = io.BytesIO()
        img.convert(mode).save(buf, 'PNG')
        _write(path, buf.getvalue())
    return apply


def _save_pil_image(mode: str, fmt: str = 'PNG'):
    """Rewrite a colour image as PIL mode ``mode`` (LA, P, CMYK) in format ``fmt``."""
    def apply(path, rng):
        raw = cv2.imread(path, cv2.IMREAD_COLOR)
        buf = io.BytesIO()
        Image.fromarray(cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)).convert(mode).save(buf, fmt)
        _write(path, buf.getvalue())
    return apply


def _bgr(raw):
    return cv2.cvtColor(raw, cv2.COLOR_GRAY2BGR) if raw.ndim == 2 else raw


def _with_alpha(raw, rng):
    bgr = _bgr(raw)
    alpha = rng.randint(0, np.iinfo(raw.dtype).max + 1, bgr.shape[:2]).astype(raw.dtype)
    return np.dstack([bgr, alpha])


def _deep(raw, rng):
    return raw.astype(np.uint16) * 257


def _grey(raw, rng):
    return cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY) if raw.ndim == 3 else raw


def _taller(raw, rng):
    return cv2.resize(raw, (raw.shape[1], raw.shape[0] + rng.randint(1, 6)),
                      interpolation=cv2.INTER_NEAREST)


def _values_0_1(raw, rng):
    return raw // 255 if set(np.unique(raw).tolist()) <= {0, 255} else raw


def _foreign_values(raw, rng):
    unused = sorted(set(range(2, 255)) - set(np.unique(raw).tolist()))
    out = raw.copy()
    flat = out.reshape(-1, *out.shape[2:])
    flat[rng.randint(0, len(flat), rng.randint(1, 20))] = unused[rng.randint(len(unused))]
    return out


def _byte_damage(reject_partial: bool) -> List[Corruption]:
    partial = 'reject' if reject_partial else 'either'
    return [
        Corruption('empty', _empty, 'reject'),
        Corruption('random_bytes', _random_bytes, 'reject', variants=4),
        Corruption('zero_fill', _zero_fill, 'reject'),
        Corruption('missing', _missing, 'reject'),
        Corruption('directory', _directory, 'reject'),
        Corruption('dangling_symlink', _dangling_symlink, 'reject'),
        Corruption('truncated', _truncate, partial, variants=8),
        Corruption('truncated_end', _truncate_end, partial, variants=3),
    ]


_IMAGE_FILE_DAMAGE = _byte_damage(reject_partial=True) + [
    Corruption('text', _text, 'reject'),
    Corruption('oversized_header', _oversized_header, 'reject'),
    Corruption('bit_flips', _bit_flips, 'either', variants=80),
    Corruption('overwritten_span', _overwrite_span, 'either', variants=30),
    Corruption('prepended_garbage', _prepend_garbage, 'either', 'exact', variants=2),
    Corruption('appended_garbage', _append_garbage, 'either', 'exact', variants=2),
]

CORRUPTIONS: Dict[str, List[Corruption]] = {
    'images': _IMAGE_FILE_DAMAGE + [
        Corruption('png_content', _reencode('.png'), 'load', 'exact'),
        Corruption('png_16bit', _reencode('.png', _deep), 'load', 'exact'),
        Corruption('png_rgba', _reencode('.png', _with_alpha), 'load', 'exact', variants=2),
        Corruption('png_rgba_16bit', _reencode('.png', lambda r, g: _with_alpha(_deep(r, g), g)),
                   'load', 'exact'),
        Corruption('tiff_content', _reencode('.tiff'), 'load', 'exact'),
        Corruption('bmp_content', _reencode('.bmp'), 'load', 'exact'),
        Corruption('webp_lossless', _reencode('.webp', params=(cv2.IMWRITE_WEBP_QUALITY, 101)),
                   'load', 'exact'),
        Corruption('grey_alpha', _save_pil_image('LA'), 'load'),
        Corruption('palette', _save_pil_image('P'), 'load'),
        Corruption('cmyk_jpeg', _save_pil_image('CMYK', 'JPEG'), 'either'),
        Corruption('jpeg_recompressed',
                   _reencode('.jpg', params=(cv2.IMWRITE_JPEG_QUALITY, 40)), 'load'),
        Corruption('grey', _reencode('.png', _grey), 'load'),
        Corruption('float_tiff', _reencode('.tiff', lambda r, g: r.astype(np.float32)),
                   'either'),
        Corruption('int16_tiff', _reencode('.tiff', lambda r, g: r.astype(np.int16)), 'either'),
        Corruption('wrong_size', _reencode('.png', _taller), 'either', 'any', variants=2),
    ],
    'masks': _IMAGE_FILE_DAMAGE + [
        Corruption('values_0_1', _reencode('.png', _values_0_1), 'either', 'exact'),
        Corruption('foreign_values', _reencode('.png', _foreign_values), 'either', variants=4),
        Corruption('mask_16bit', _reencode('.png', lambda r, g: r.astype(np.uint16)),
                   'either'),
        Corruption('mask_16bit_scaled', _reencode('.png', _deep), 'either'),
        Corruption('mask_rgb', _reencode('.png', lambda r, g: _bgr(r)), 'either'),
        Corruption('mask_rgba', _reencode('.png', _with_alpha), 'either'),
        Corruption('mask_grey_alpha', _save_pil('LA'), 'either'),
        Corruption('mask_palette', _save_pil('P'), 'either'),
        Corruption('mask_bilevel', _save_pil('1'), 'either'),
        Corruption('mask_jpeg', _reencode('.jpg'), 'either'),
        Corruption('mask_float_tiff', _reencode('.tiff', lambda r, g: r.astype(np.float32)),
                   'either'),
        Corruption('mask_int16_tiff', _reencode('.tiff', lambda r, g: r.astype(np.int16)),
                   'either'),
        Corruption('wrong_size', _reencode('.png', _taller), 'either', 'any', variants=2),
    ],
}


# ---- damage to CSV label tables ---------------------------------------------------------------

_BAD_CELLS = ('', 'abc', 'nan', 'inf', '-1', '2', '0.5', '1e9', 'None', '1 1', '0x1', '--')


def _rows(path: str) -> List[List[str]]:
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.reader(f))


def _edit_rows(edit, lineterminator: str = '\n', **writer_args):
    """A corruption that edits a table's parsed rows (header first) and writes them back."""
    def apply(path, rng):
        buf = io.StringIO()
        csv.writer(buf, lineterminator=lineterminator, **writer_args).writerows(
            edit(_rows(path), rng))
        _write(path, buf.getvalue().encode('utf-8'))
    return apply


def _data_row(rows, rng) -> int:
    return rng.randint(1, len(rows)) if len(rows) > 1 else 0


def _bad_cell(rows, rng):
    row = rows[_data_row(rows, rng)]
    row[rng.randint(len(row))] = _BAD_CELLS[rng.randint(len(_BAD_CELLS))]
    return rows


def _drop_cell(rows, rng):
    rows[_data_row(rows, rng)].pop()
    return rows


def _extra_cell(rows, rng):
    rows[_data_row(rows, rng)].append('1')
    return rows


def _duplicate_row(rows, rng):
    r = _data_row(rows, rng)
    return rows[:r + 1] + [list(rows[r])] + rows[r + 1:]


def _shuffle_rows(rows, rng):
    return rows[:1] + [rows[1:][i] for i in rng.permutation(len(rows) - 1)]


def _swap_columns(rows, rng):
    i, j = sorted(rng.choice(len(rows[0]), 2, replace=False))
    for row in rows:
        if len(row) > j:
            row[i], row[j] = row[j], row[i]
    return rows


def _rename_column(rows, rng):
    rows[0][rng.randint(len(rows[0]))] = 'xyz'
    return rows


def _pad_cells(rows, rng):
    r = _data_row(rows, rng)
    rows[r] = [f' {cell} ' for cell in rows[r]]
    return rows


def _bom(path, rng):
    _write(path, b'\xef\xbb\xbf' + _read(path))


def _non_utf8(path, rng):
    data = _read(path)
    pos = rng.randint(data.index(b'\n') + 1, len(data))
    _write(path, data[:pos] + b'\xff\xfe' + data[pos:])


def _cut_last_row(path, rng):
    data = _read(path).rstrip(b'\r\n')
    # The last line break before the final two bytes: a quoted cell may end with a line break
    # followed only by its closing quote (as in TCIA's CBIS-DDSM tables).
    start = data.rindex(b'\n', 0, len(data) - 2) + 1
    # Keep part of the row, lose part of its content: the row is left incomplete.
    _write(path, data[:rng.randint(start + 1, len(data))])


CORRUPTIONS['label_tables'] = [
    Corruption('empty', _empty, 'reject'),
    Corruption('random_bytes', _random_bytes, 'reject', variants=3),
    Corruption('zero_fill', _zero_fill, 'reject'),
    Corruption('missing', _missing, 'reject'),
    Corruption('directory', _directory, 'reject'),
    Corruption('dangling_symlink', _dangling_symlink, 'reject'),
    Corruption('header_only', _edit_rows(lambda rows, rng: rows[:1]), 'reject'),
    Corruption('bad_cell', _edit_rows(_bad_cell), 'either', variants=16),
    Corruption('dropped_cell', _edit_rows(_drop_cell), 'either', variants=2),
    Corruption('extra_cell', _edit_rows(_extra_cell), 'either', variants=2),
    Corruption('duplicated_row', _edit_rows(_duplicate_row), 'either', variants=2),
    Corruption('swapped_columns', _edit_rows(_swap_columns), 'either', variants=3),
    Corruption('renamed_column', _edit_rows(_rename_column), 'either', variants=2),
    Corruption('padded_cells', _edit_rows(_pad_cells), 'either'),
    Corruption('semicolons', _edit_rows(lambda rows, rng: rows, delimiter=';'), 'either'),
    Corruption('cut_last_row', _cut_last_row, 'either', variants=4),
    Corruption('non_utf8', _non_utf8, 'either', variants=2),
    Corruption('utf8_bom', _bom, 'either'),
    Corruption('blank_lines', lambda path, rng: _write(path, _read(path) + b'\n\n'), 'either'),
    Corruption('shuffled_rows', _edit_rows(_shuffle_rows), 'load', variants=2),
    Corruption('crlf', _edit_rows(lambda rows, rng: rows, lineterminator='\r\n'), 'load'),
    Corruption('all_quoted', _edit_rows(lambda rows, rng: rows, quoting=csv.QUOTE_ALL), 'load'),
]


# ---- damage to DICOM files --------------------------------------------------------------------

def _edit_dicom(edit):
    """A corruption that edits a DICOM file's dataset with pydicom and saves it back."""
    def apply(path, rng):
        ds = pydicom.dcmread(path)
        edit(ds, rng)
        ds.save_as(path, enforce_file_format=True)
    return apply


def _implicit_vr(ds, rng):
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian


def _rle(ds, rng):
    ds.compress(pydicom.uid.RLELossless)


def _no_window(ds, rng):
    for keyword in ('WindowCenter', 'WindowWidth'):
        if keyword in ds:
            delattr(ds, keyword)


def _other_monochrome(ds, rng):
    ds.PhotometricInterpretation = {'MONOCHROME1': 'MONOCHROME2',
                                    'MONOCHROME2': 'MONOCHROME1'}[ds.PhotometricInterpretation]


def _eight_bit(ds, rng):
    ds.PixelData = (ds.pixel_array >> 8).astype(np.uint8).tobytes()
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7


def _rgb(ds, rng):
    ds.PixelData = np.repeat(ds.pixel_array[..., None], 3, axis=2).tobytes()
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = 'RGB'


def _two_frames(ds, rng):
    ds.PixelData = ds.PixelData * 2
    ds.NumberOfFrames = 2


def _one_more_row(ds, rng):
    ds.Rows += 1


def _no_pixel_data(ds, rng):
    del ds.PixelData


CORRUPTIONS['dicom_files'] = _byte_damage(reject_partial=True) + [
    Corruption('text', _text, 'reject'),
    Corruption('bit_flips', _bit_flips, 'either', variants=80),
    Corruption('overwritten_span', _overwrite_span, 'either', variants=30),
    Corruption('prepended_garbage', _prepend_garbage, 'either', 'exact', variants=2),
    Corruption('appended_garbage', _append_garbage, 'either', 'exact', variants=2),
    Corruption('implicit_vr', _edit_dicom(_implicit_vr), 'load', 'exact'),
    Corruption('rle_lossless', _edit_dicom(_rle), 'load', 'exact'),
    Corruption('no_window', _edit_dicom(_no_window), 'load'),
    Corruption('other_monochrome', _edit_dicom(_other_monochrome), 'load'),
    Corruption('eight_bit', _edit_dicom(_eight_bit), 'load'),
    Corruption('rgb', _edit_dicom(_rgb), 'reject'),
    Corruption('two_frames', _edit_dicom(_two_frames), 'reject'),
    Corruption('one_more_row', _edit_dicom(_one_more_row), 'reject'),
    Corruption('no_pixel_data', _edit_dicom(_no_pixel_data), 'reject'),
]


# ---- damage to HDF5 files ---------------------------------------------------------------------

def _edit_h5(edit, **dataset_options):
    """A corruption that rewrites each dataset of an HDF5 file as ``edit(array, rng)``."""
    def apply(path, rng):
        with h5py.File(path, 'r') as f:
            arrays = {name: f[name][()] for name in f}
        with h5py.File(path, 'w') as f:
            for name, array in arrays.items():
                f.create_dataset(name, data=edit(array, rng), **dataset_options)
    return apply


def _h5_renamed(path, rng):
    with h5py.File(path, 'a') as f:
        for name in list(f):
            f.move(name, name + '_renamed')


def _foreign_value(array, rng):
    out = array.copy()
    out.reshape(-1)[rng.randint(out.size)] = 2
    return out


CORRUPTIONS['h5_files'] = _byte_damage(reject_partial=True) + [
    Corruption('text', _text, 'reject'),
    Corruption('bit_flips', _bit_flips, 'either', variants=80),
    Corruption('overwritten_span', _overwrite_span, 'either', variants=30),
    Corruption('prepended_garbage', _prepend_garbage, 'either', 'exact', variants=2),
    Corruption('appended_garbage', _append_garbage, 'either', 'exact', variants=2),
    Corruption('h5_contiguous', _edit_h5(lambda a, rng: a), 'load', 'exact'),
    Corruption('h5_gzip', _edit_h5(lambda a, rng: a, compression='gzip'), 'load', 'exact'),
    Corruption('h5_renamed', _h5_renamed, 'reject'),
    Corruption('h5_float', _edit_h5(lambda a, rng: a.astype(np.float32)), 'reject'),
    Corruption('h5_one_more_row', _edit_h5(lambda a, rng: np.concatenate([a, a[-1:]])),
               'reject'),
    Corruption('h5_one_row_less', _edit_h5(lambda a, rng: a[:-1]), 'reject'),
    Corruption('h5_foreign_value', _edit_h5(_foreign_value), 'either'),
]


# ---- the harness ------------------------------------------------------------------------------

def _load_all(dataset_cls: type, layout: SyntheticLayout):
    """Build the dataset over a layout and load every sample with the layout's pipeline.

    Returns:
        tuple: The construction error (or None) and, per sample, (key, file paths, the loaded
        sample or the error it raised).
    """
    with DefaultScope.overwrite_default_scope('medtrans'):
        transforms = [TRANSFORMS.build(step) for step in layout.pipeline]
        try:
            # Serialising the data list costs a full garbage collection per dataset, and is
            # not what is tested here.
            dataset = dataset_cls(**{**layout.dataset_cfg, 'pipeline': [],
                                     'serialize_data': False})
            dataset.full_init()
            infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        except Exception as err:  # judged by the caller, whatever its type
            return err, []
    samples = []
    for info in infos:
        paths = [v for k, v in info.items() if k.endswith('_path') and isinstance(v, str)]
        key = (osp.relpath(info['img_path'], layout.root) if 'img_path' in info
               else str(info['sample_idx']))
        try:
            result = info
            for transform in transforms:
                result = transform(result)
            samples.append((key, paths, result))
        except Exception as err:  # judged by the caller, whatever its type
            samples.append((key, paths, err))
    return None, samples


_REFERENCES: Dict[str, Dict[str, dict]] = {}


def _reference(name: str, dataset_cls: type) -> Dict[str, dict]:
    """The samples of the uncorrupted layout, by key (computed once per dataset class)."""
    if name not in _REFERENCES:
        with tempfile.TemporaryDirectory() as tmp:
            layout = write_synthetic_layout(dataset_cls, osp.join(tmp, 'data'), TOY_LAYOUTS)
            error, samples = _load_all(dataset_cls, layout)
        assert error is None, f'{name}: its own synthetic layout fails to build: {error!r}'
        bad = [(key, result) for key, _, result in samples if isinstance(result, Exception)]
        assert not bad, f'{name}: samples of its own synthetic layout fail to load: {bad}'
        keys = [key for key, _, _ in samples]
        assert len(set(keys)) == len(keys), f'{name}: sample keys repeat: {keys}'
        _REFERENCES[name] = {key: result for key, _, result in samples}
    return _REFERENCES[name]


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and np.array_equal(a, b))
    return type(a) is type(b) and np.array_equal(np.asarray(a), np.asarray(b))


class FuzzFailure(AssertionError):
    """A corruption gave an unrelated error, a silently wrong sample or the wrong outcome."""


def run_case(dataset_cls: type, name: str, kind: str, corruption: Corruption, variant: int,
             root: str) -> str:
    """Write the layout under ``root``, damage one file, load everything and judge.

    Returns:
        str: ``'loaded'`` or ``'rejected'``.

    Raises:
        FuzzFailure: What went wrong, with the case and the file.
    """
    reference = _reference(name, dataset_cls)
    layout = write_synthetic_layout(dataset_cls, root, TOY_LAYOUTS)
    case = f'{name}/{kind}/{corruption.name}/{variant}'
    rng = np.random.RandomState(zlib.crc32(case.encode()))
    files = layout.files()[kind]
    target = files[rng.randint(len(files))]
    corruption.apply(target, rng)
    where = f'{case} on "{target}"'

    def judge_error(err: Exception, during: str) -> None:
        if not isinstance(err, EXPECTED_ERRORS):
            raise FuzzFailure(f'{where}: {during} raised {type(err).__name__}: {err}; expected '
                              f'one of {[e.__name__ for e in EXPECTED_ERRORS]}') from err
        if osp.basename(target) not in str(err):
            raise FuzzFailure(f'{where}: {during} raised {type(err).__name__} without naming '
                              f'the file: {err}') from err

    error, samples = _load_all(dataset_cls, layout)
    if error is not None:
        judge_error(error, 'building the dataset')
        if corruption.outcome == 'load':
            raise FuzzFailure(f'{where}: expected the dataset to load, got {error!r}')
        return 'rejected'
    keys = Counter(key for key, _, _ in samples)
    if keys != Counter(list(reference)):
        raise FuzzFailure(f'{where}: the dataset holds samples {sorted(keys.elements())}, '
                          f'expected {sorted(reference)}: samples were silently dropped or added')
    rejected = False
    for key, paths, result in samples:
        touched = target in paths or kind == 'label_tables'
        if isinstance(result, Exception):
            judge_error(result, f'loading sample {key}')
            rejected = True
            continue
        expected = reference[key]
        for target_key in layout.target_keys:
            if not _same(result.get(target_key), expected.get(target_key)):
                raise FuzzFailure(f'{where}: sample {key} loaded with a different {target_key} '
                                  'than the uncorrupted file: a silently wrong label')
        img, ref_img = result.get('img'), expected.get('img')
        check = corruption.image if touched else 'exact'
        if check == 'exact' and not _same(img, ref_img):
            raise FuzzFailure(f'{where}: sample {key} loaded with other pixels than expected')
        shapes = (ref_img.shape, _declared_shape(target, ref_img.shape)) if touched else ()
        if check == 'shape' and not (isinstance(img, np.ndarray) and img.dtype == ref_img.dtype
                                     and img.shape in shapes):
            raise FuzzFailure(f'{where}: sample {key} loaded an image of '
                              f'{getattr(img, "dtype", None)} {getattr(img, "shape", None)}; '
                              f'expected {ref_img.dtype} {ref_img.shape}')
        if check == 'any' and not isinstance(img, np.ndarray):
            raise FuzzFailure(f'{where}: sample {key} loaded without an image array')
    if corruption.outcome == 'load' and rejected:
        raise FuzzFailure(f'{where}: expected every sample to load')
    if corruption.outcome == 'reject' and not rejected:
        raise FuzzFailure(f'{where}: the damaged file loaded as if it were fine')
    return 'rejected' if rejected else 'loaded'


def _declared_shape(path: str, ref_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    """The image shape that a damaged file's header now declares.

    A bit flip in a JPEG frame header changes the declared size; libjpeg (OpenCV, PIL and
    torchvision alike) then decodes that size, padding what the data lack with only a warning on
    stderr, so no loader can tell such a file from a real image of that size.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception:
        return ref_shape
    return (height, width) + tuple(ref_shape[2:])


# ---- datasets that test the harness itself (not registered) -----------------------------------

def toy_csv_layout(root: str) -> SyntheticLayout:
    """The layout of ``_ToyCsvDataset`` (through :data:`TOY_LAYOUTS`)."""
    os.makedirs(osp.join(root, 'images'))
    rng = np.random.RandomState(0)
    rows, images = [_ToyCsvDataset.HEADER], []
    for i in range(3):
        images.append(osp.join(root, 'images', f'case_{i}.png'))
        cv2.imwrite(images[-1], rng.randint(0, 256, (32, 32, 3)).astype(np.uint8))
        rows.append([f'case_{i}'] + ['1' if c == i else '0' for c in range(3)])
    table = osp.join(root, 'labels.csv')
    with open(table, 'w', newline='') as f:
        csv.writer(f, lineterminator='\n').writerows(rows)
    return SyntheticLayout(root=root, dataset_cfg=dict(data_root=root),
                           pipeline=[dict(type='LoadImageStrict')], target_keys=('gt_label', ),
                           images=images, label_tables=[table])


def lax_loader_layout(root: str) -> SyntheticLayout:
    """The toy layout, loaded with MMCV's LoadImageFromFile."""
    layout = toy_csv_layout(root)
    layout.pipeline = [dict(type='LoadImageFromFile')]
    return layout


class _ToyCsvDataset(BaseDataset):
    """A strict CSV-labelled classification set: ``images/<id>.png`` and ``labels.csv`` with the
    header ``image,A,B,C`` and one-hot 0/1 rows. It exercises the label-table corruptions until
    a registered dataset has label tables."""

    METAINFO = dict(classes=('A', 'B', 'C'))
    HEADER = ['image', 'A', 'B', 'C']

    def __init__(self, data_root: str, **kwargs) -> None:
        super().__init__(data_root=data_root, ann_file='labels.csv', **kwargs)

    def load_data_list(self) -> List[dict]:
        path = self.ann_file
        if not osp.isfile(path):
            raise FileNotFoundError(f'label table "{path}" not found; expected a CSV file.')
        try:
            with open(path, newline='', encoding='utf-8') as f:
                rows = list(csv.reader(f))
        except (UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f'label table "{path}" is not a UTF-8 CSV: {err}') from err
        if not rows or rows[0] != self.HEADER:
            raise ValueError(f'label table "{path}" has the header {rows[:1]}; expected '
                             f'{self.HEADER}.')
        infos, seen = [], set()
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != 4 or any(c not in ('0', '1') for c in row[1:]) or row.count('1') != 1:
                raise ValueError(f'label table "{path}" line {line} is {row}; expected an id '
                                 'and one 1 among three 0/1 cells.')
            if row[0] in seen:
                raise ValueError(f'label table "{path}" line {line} repeats id "{row[0]}".')
            seen.add(row[0])
            img = osp.join(self.data_root, 'images', row[0] + '.png')
            if not osp.isfile(img):
                raise FileNotFoundError(f'label table "{path}" line {line}: image "{img}" '
                                        'not found.')
            infos.append(dict(img_path=img, gt_label=row[1:].index('1')))
        if not infos:
            raise ValueError(f'label table "{path}" has no rows; expected one per image.')
        return infos


class _SloppyCsvDataset(_ToyCsvDataset):
    """Reads its table naively: the harness must catch it."""

    def load_data_list(self) -> List[dict]:
        with open(self.ann_file) as f:
            lines = f.read().splitlines()[1:]
        infos = []
        for line in lines:
            name, *cells = line.split(',')
            infos.append(dict(img_path=osp.join(self.data_root, 'images', name + '.png'),
                              gt_label=[float(c) for c in cells].index(1.0)))
        return infos


class _LaxLoaderDataset(_ToyCsvDataset):
    """Loads images with MMCV's LoadImageFromFile, which asserts instead of naming the problem."""


#: The layouts of the datasets above, which the harness finds as it finds medtrans' own
#: (``write_synthetic_layout(..., extra_layouts)``); ``_SloppyCsvDataset`` inherits its parent's.
TOY_LAYOUTS = {'_ToyCsvDataset': toy_csv_layout, '_LaxLoaderDataset': lax_loader_layout}


# ---- cases ------------------------------------------------------------------------------------

register_all_modules(init_default_scope=False)
REGISTERED: Dict[str, type] = dict(sorted(DATASETS.module_dict.items()))
SELF_TEST: Dict[str, type] = {'ToyCsvDataset': _ToyCsvDataset}
# Outcomes of the cases run, reported at the end of the module.
TRIED: Counter = Counter()


def _cases(datasets: Dict[str, type]) -> list:
    params = []
    for name, cls in datasets.items():
        try:
            with tempfile.TemporaryDirectory() as tmp:
                kinds = list(write_synthetic_layout(cls, osp.join(tmp, 'data'),
                                                    TOY_LAYOUTS).files())
        except Exception:  # test_every_registered_dataset_joins_the_fuzz_tests reports it
            continue
        for kind in kinds:
            for corruption in CORRUPTIONS[kind]:
                for variant in range(corruption.variants):
                    params.append(pytest.param(name, kind, corruption, variant,
                                               id=f'{name}-{kind}-{corruption.name}-{variant}'))
    return params


REGISTERED_CASES = _cases(REGISTERED)
SELF_TEST_CASES = _cases(SELF_TEST)
MIN_CASES_PER_DATASET = 100


@pytest.fixture(scope='module', autouse=True)
def _report_inputs_tried():
    yield
    # Shown with ``pytest -s``; every case also has its own test id.
    print(f'\nfuzz: {sum(TRIED.values())} corrupted inputs tried '
          f'({", ".join(f"{k}: {v}" for k, v in sorted(TRIED.items()))})')


def test_the_registry_holds_datasets():
    assert 'ISIC2018Task1Dataset' in REGISTERED


@pytest.mark.parametrize('name', sorted(REGISTERED))
def test_every_registered_dataset_joins_the_fuzz_tests(name, tmp_path):
    # Fails, rather than skips, for a dataset without the protocol: none opts out silently.
    layout = write_synthetic_layout(REGISTERED[name], str(tmp_path / 'data'))
    assert _reference(name, REGISTERED[name]).keys()
    cases = [p for p in REGISTERED_CASES if p.values[0] == name]
    assert len(cases) >= MIN_CASES_PER_DATASET, (name, layout.files().keys())


def test_every_medtrans_layout_names_a_registered_dataset():
    # A renamed dataset leaves no stale entry behind.
    assert set(MEDTRANS_LAYOUTS) <= set(REGISTERED), set(MEDTRANS_LAYOUTS) - set(REGISTERED)


def test_a_dataset_without_a_layout_is_refused_with_how_to_declare_one(tmp_path):
    class NoLayoutDataset(BaseDataset):
        pass

    with pytest.raises(LookupError, match='NoLayoutDataset has no synthetic layout') as info:
        write_synthetic_layout(NoLayoutDataset, str(tmp_path))
    for hint in ('MEDTRANS_LAYOUTS', f'{ENTRY_POINT_GROUP} = NoLayoutDataset = ', 'setup.cfg'):
        assert hint in str(info.value)
    with pytest.raises(ValueError, match='is a str; expected a function'):
        find_layout(NoLayoutDataset, {'NoLayoutDataset': 'medtrans.testing:aptos2019_layout'})
    assert os.listdir(tmp_path) == []
    # A subclass is fuzzed with its parent's layout unless it has its own.
    assert find_layout(type('MyISIC', (ISIC2018Task1Dataset, ), {})) is isic2018_task1_layout
    assert find_layout(type('Sub', (_ToyCsvDataset, ), {}), TOY_LAYOUTS) is toy_csv_layout
    assert find_layout(_LaxLoaderDataset, TOY_LAYOUTS) is lax_loader_layout
    assert find_layout(_SloppyCsvDataset, TOY_LAYOUTS) is toy_csv_layout


_FAKE_PLUGIN = 'medtrans_fuzz_fake_plugin'


@pytest.fixture
def fake_plugin(tmp_path, monkeypatch):
    """An installed package declaring layouts in ENTRY_POINT_GROUP: its dist-info folder on
    sys.path, which is what importlib.metadata reads."""
    (tmp_path / f'{_FAKE_PLUGIN}.py').write_text(
        'from medtrans.testing import aptos2019_layout as layout  # noqa: F401\n'
        "NOT_CALLABLE = 'a string'\n")
    dist_info = tmp_path / f'{_FAKE_PLUGIN}-0.1.dist-info'
    dist_info.mkdir()
    (dist_info / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: medtrans-fuzz-fake-plugin\nVersion: 0.1\n')
    (dist_info / 'entry_points.txt').write_text(f"""[{ENTRY_POINT_GROUP}]
FakePluginDataset = {_FAKE_PLUGIN}:layout
NoFunctionDataset = {_FAKE_PLUGIN}
MissingFunctionDataset = {_FAKE_PLUGIN}:no_such_layout
MissingModuleDataset = {_FAKE_PLUGIN}_no_such_module:layout
NotCallableDataset = {_FAKE_PLUGIN}:NOT_CALLABLE
ISIC2018Task1Dataset = {_FAKE_PLUGIN}:layout
""")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin_layouts.cache_clear()
    yield
    plugin_layouts.cache_clear()
    sys.modules.pop(_FAKE_PLUGIN, None)


def test_a_plugin_declares_its_layouts_as_entry_points(fake_plugin):
    from medtrans.testing import aptos2019_layout

    assert 'FakePluginDataset' in plugin_layouts()
    plugin_cls = type('FakePluginDataset', (BaseDataset, ), {})
    assert find_layout(plugin_cls) is aptos2019_layout
    assert find_layout(type('Sub', (plugin_cls, ), {})) is aptos2019_layout
    for name, match in (
        ('NoFunctionDataset', "not 'package.module:function'"),
        ('MissingFunctionDataset', 'package medtrans-fuzz-fake-plugin.*could not be imported'),
        ('MissingModuleDataset', 'could not be imported'),
        ('NotCallableDataset', 'is a str; expected a function'),
        # A name declared twice (here by medtrans and the plugin) is ambiguous.
        ('ISIC2018Task1Dataset', 'more than one synthetic layout'),
    ):
        with pytest.raises(ValueError, match=match):
            find_layout(type(name, (BaseDataset, ), {}))


def test_product_code_does_not_import_medtrans_testing(repo_root):
    # Statically, every import in medtrans/ outside medtrans/testing/ (relative ones resolved).
    offenders = []
    for path in sorted((repo_root / 'medtrans').rglob('*.py')):
        rel = path.relative_to(repo_root).with_suffix('')
        if rel.parts[:2] == ('medtrans', 'testing'):
            continue
        package = list(rel.parts[:-1])
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                module = '.'.join(base + ([node.module] if node.module else []))
                targets = [module] + [f'{module}.{alias.name}' for alias in node.names]
            else:
                continue
            offenders += [f'{rel}:{node.lineno} {target}' for target in targets
                          if target == 'medtrans.testing' or target.startswith('medtrans.testing.')]
    assert offenders == [], offenders
    # And at run time, in a fresh interpreter, with every module and plugin registered: neither
    # medtrans nor the example plugin's product code imports the test helpers.
    code = ('import sys; from medtrans.setup_env import register_all_modules; '
            'register_all_modules(init_default_scope=False); '
            'print(*sorted(sys.modules), sep="\\n")')
    modules = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                             check=True).stdout.split()
    assert 'medtrans.datasets.isic2018' in modules and 'medtrans_example_plugin' in modules
    assert [m for m in modules if m.startswith('medtrans.testing')
            or m == 'medtrans_example_plugin.synthetic'] == []


@pytest.mark.parametrize('name, kind, corruption, variant', REGISTERED_CASES)
def test_registered_dataset_survives(name, kind, corruption, variant, tmp_path):
    TRIED[run_case(REGISTERED[name], name, kind, corruption, variant,
                   str(tmp_path / 'data'))] += 1


@pytest.mark.parametrize('name, kind, corruption, variant', SELF_TEST_CASES)
def test_strict_csv_dataset_survives(name, kind, corruption, variant, tmp_path):
    TRIED[run_case(SELF_TEST[name], name, kind, corruption, variant,
                   str(tmp_path / 'data'))] += 1


def _corruption(kind: str, name: str) -> Corruption:
    return next(c for c in CORRUPTIONS[kind] if c.name == name)


@pytest.mark.parametrize('dataset_cls, kind, corruption, variant, reason', [
    (_SloppyCsvDataset, 'label_tables', 'directory', 0, 'IsADirectoryError'),
    (_SloppyCsvDataset, 'label_tables', 'header_only', 0, 'silently dropped'),
    (_SloppyCsvDataset, 'label_tables', 'duplicated_row', 0, 'silently dropped or added'),
    (_SloppyCsvDataset, 'label_tables', 'all_quoted', 0, 'ValueError without naming'),
    (_SloppyCsvDataset, 'label_tables', 'non_utf8', 0, 'UnicodeDecodeError without naming'),
    (_SloppyCsvDataset, 'label_tables', 'swapped_columns', 0, 'silently wrong label'),
    (_LaxLoaderDataset, 'images', 'random_bytes', 0, 'raised AssertionError'),
], ids=lambda v: v if isinstance(v, str) else None)
def test_the_harness_catches_sloppy_datasets(dataset_cls, kind, corruption, variant, reason,
                                             tmp_path):
    with pytest.raises(FuzzFailure, match=reason):
        run_case(dataset_cls, dataset_cls.__name__, kind, _corruption(kind, corruption),
                 variant, str(tmp_path / 'data'))
