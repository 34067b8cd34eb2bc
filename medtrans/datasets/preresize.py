"""Pre-resized copies of a dataset's large images, made once and read in their place.

ISIC photographs reach 6000x4000 pixels and mammograms more, while training works at 224-512:
decoding the original is then most of a data-loading worker's time, every epoch. The converter
(``tools/dataset_converters/preresize.py CONFIG --short-side S``, :func:`build_cache`) writes
once, for every image and training mask the config's datasets read, a copy whose shorter side
is ``S``:

* the aspect ratio is kept: the longer side becomes ``round(long * S / short)``
  (:func:`preresized_shape`);
* images are resized by OpenCV's area interpolation (an average over the source pixels, as
  antialiased as a resize gets), masks by nearest neighbour (their values stay 0/1 or 0/255);
* a copy keeps its source's format: a JPEG is written as a JPEG of quality ``jpeg_quality``
  (default 95), a PNG losslessly (8 or 16 bits, channels as stored);
* files whose shorter side is at most ``S`` get no copy: the original is read;
* only JPEG and PNG images and PNG masks under ``data_root`` are copied; other files (DICOM,
  HDF5, JPEG masks, files elsewhere) are always read as they are.

The copies go to a cache folder (``<data_root>/.preresized/`` by default) mirroring the paths
under ``data_root``, with ``manifest.json``: per source file its size in bytes, modification
time, SHA-256, pixel size and its copy's. A rerun converts only what changed: a source whose
bytes and modification time match is skipped; otherwise it is hashed, and a changed hash
rebuilds its copy (an unchanged one only refreshes the recorded time). A new ``S`` or quality
rebuilds everything.

The datasets read the cache when it is there (:func:`use_preresized`, called by
:class:`~medtrans.datasets.BaseClsDataset` and
:class:`~medtrans.datasets.segmentation.SplitSegDataset`; their ``preresized`` argument turns it
off or names another folder). A sample reads its copy only if its sources' byte counts and
modification times still match the manifest; other samples read their originals, and a warning
names them and the command that rebuilds the cache. A sample keeps its ``img_path`` and
``seg_map_path`` (the originals: sample ids, prediction files, overlays and messages name
them); the copy to read is in ``img_cache_path`` / ``seg_map_cache_path``, which
:class:`~medtrans.datasets.transforms.LoadImageStrict` and
:class:`~medtrans.datasets.transforms.LoadBinaryMask` prefer (other loaders read the originals).
Scoring stays at the original size: in a segmentation test (``test_mode``) the image comes
from the cache but the mask is the original, and the sample's ``source_shape`` (the original's
size) becomes ``ori_shape``, to which the prediction is resized back. Training masks are read
from the cache with their images.

A copy is trusted while its source keeps the recorded byte count and modification time. A new
version of a file that keeps both (``cp -p`` or ``rsync -t`` of a same-size file) goes
unnoticed, by the datasets and by the converter alike: delete the cache folder after such a
copy.

Written here because neither MMEngine, MMCV, mmpretrain nor mmseg caches resized images.
"""
import hashlib
import json
import multiprocessing
import os
import os.path as osp
import time
from collections import Counter
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import cv2
from mmengine.logging import MMLogger

from medtrans.fileio import atomic_write_bytes, atomic_write_text
from medtrans.registry import DATASETS
from medtrans.utils.progress import track

from .transforms.loading import LoadBinaryMask, LoadImageStrict, decode_image, read_bytes

__all__ = ['DEFAULT_FOLDER', 'MANIFEST', 'CACHE_KEYS', 'preresized_shape', 'build_cache',
           'use_preresized', 'reads_preresized', 'PreresizedCache']

#: The cache folder under ``data_root`` that datasets look for.
DEFAULT_FOLDER = '.preresized'
#: The manifest's file name in the cache folder.
MANIFEST = 'manifest.json'
_FORMAT = 'medtrans-preresized-1'
_KINDS = {'image': cv2.INTER_AREA, 'mask': cv2.INTER_NEAREST}
#: The formats copied, by kind: masks only lossless ones.
_FORMATS = {'image': ('.jpg', '.jpeg', '.png'), 'mask': ('.png', )}
#: The data-info key of each path key's copy.
CACHE_KEYS = {'img_path': 'img_cache_path', 'seg_map_path': 'seg_map_cache_path'}
_REBUILD = 'python tools/dataset_converters/preresize.py CONFIG --short-side {}'


def preresized_shape(shape: Sequence[int], short_side: int) -> Optional[Tuple[int, int]]:
    """The (height, width) of the copy of an image of ``shape`` (height, width, ...).

    Returns:
        tuple | None: The shorter side ``short_side``, the longer scaled by the same factor and
        rounded; None when the shorter side is at most ``short_side`` (no copy).
    """
    height, width = int(shape[0]), int(shape[1])
    short = min(height, width)
    if short <= short_side:
        return None
    scale = short_side / short
    if height <= width:
        return short_side, max(1, round(width * scale))
    return max(1, round(height * scale)), short_side


def reads_preresized(dataset_type: Union[str, type]) -> bool:
    """Whether a dataset class takes the ``preresized`` argument: it sets (or inherits)
    ``READS_PRERESIZED = True``, as the medtrans classification and segmentation bases do.

    Args:
        dataset_type (str | type): The class, or a config's ``type`` (looked up in the
            ``DATASETS`` registry, in the current default scope).
    """
    if isinstance(dataset_type, str):
        dataset_type = DATASETS.get(dataset_type)
    return bool(getattr(dataset_type, 'READS_PRERESIZED', False))


def _source_key(path: str, data_root: str, kind: str) -> Optional[str]:
    """The manifest key of a file: its path under ``data_root`` ('/'-separated), or None when
    it is not copied (outside ``data_root``, or not a format copied for its kind)."""
    if not path.lower().endswith(_FORMATS[kind]):
        return None
    rel = osp.relpath(osp.abspath(path), osp.abspath(data_root))
    if rel == '..' or rel.startswith('..' + os.sep) or osp.isabs(rel):
        return None
    return rel.replace(os.sep, '/')


def _stat(path: str) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _copy_intact(entry: dict, copy: str) -> bool:
    """Whether an entry's copy is on disk with its recorded size (or it needs none)."""
    return entry['copy_bytes'] is None or (_stat(copy) or (None, ))[0] == entry['copy_bytes']


def _convert(task: tuple) -> Tuple[str, dict]:
    """Read one source, write its copy if it is larger than the short side; its manifest
    entry. Runs in the converter's worker processes."""
    key, src, dst, kind, short_side, quality = task
    size, mtime = _stat(src) or (0, 0)
    content = read_bytes(src)
    img = decode_image(src, content)
    entry = dict(kind=kind, bytes=size, mtime_ns=mtime,
                 sha256=hashlib.sha256(content).hexdigest(), shape=list(img.shape[:2]),
                 copy_shape=None, copy_bytes=None)
    target = preresized_shape(img.shape, short_side)
    if target is None:
        if osp.exists(dst):  # a copy from a smaller short side: no longer read
            os.remove(dst)
        return key, entry
    resized = cv2.resize(img, target[::-1], interpolation=_KINDS[kind])
    ext = osp.splitext(dst)[1].lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext != '.png' else []
    ok, encoded = cv2.imencode(ext, resized, params)
    if not ok:
        raise ValueError(f'"{src}": OpenCV could not encode its resized copy as {ext}.')
    atomic_write_bytes(dst, encoded.tobytes())
    entry.update(copy_shape=list(target), copy_bytes=len(encoded))
    return key, entry


def _read_manifest(folder: str) -> Optional[dict]:
    path = osp.join(folder, MANIFEST)
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        try:
            manifest = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'Pre-resized cache manifest "{path}" is not valid JSON ({err}); '
                             'delete the folder and rebuild it with '
                             f'{_REBUILD.format("S")}.') from err
    if not isinstance(manifest, dict) or manifest.get('format') != _FORMAT:
        raise ValueError(f'"{path}" is not a medtrans pre-resized cache manifest (expected '
                         f'"format": "{_FORMAT}"); delete the folder and rebuild it with '
                         f'{_REBUILD.format("S")}.')
    return manifest


def build_cache(data_root: str,
                sources: Iterable[Tuple[str, str]],
                short_side: int,
                folder: Optional[str] = None,
                jpeg_quality: int = 95,
                workers: int = 0,
                pairs: Sequence[Tuple[str, str]] = (),
                log: Callable[[str], None] = print) -> Counter:
    """Write or update the pre-resized copies of ``sources`` (see the module docstring).

    The manifest is written at the end, and also when the conversion stops on an error, so
    that a rerun resumes where it stopped; copies are written atomically.

    Args:
        data_root (str): The dataset's root; manifest keys and copies mirror paths under it.
        sources (Iterable[tuple[str, str]]): (path, kind) pairs, kind ``'image'`` or
            ``'mask'``; repeats are converted once.
        short_side (int): The copies' shorter side in pixels.
        folder (str, optional): The cache folder. Defaults to ``<data_root>/.preresized``.
        jpeg_quality (int): Quality of JPEG copies, 1-100. Defaults to 95.
        workers (int): Processes converting in parallel; 0 converts in this process.
            Defaults to 0.
        pairs (Sequence[tuple[str, str]]): (image, mask) paths that must have one size, so
            that their copies do too. Defaults to ().
        log (Callable[[str], None]): Receives progress lines; on a terminal a progress bar is
            drawn on stderr instead of the line every 500 files
            (:func:`medtrans.utils.progress.track`). Defaults to print.

    Returns:
        Counter: Files by outcome: ``'copied'`` (a copy written), ``'small'`` (no copy needed),
        ``'up to date'``, ``'touched'`` (same content, new time recorded) and ``'not copied'``
        (outside ``data_root`` or another format: always read as they are).

    Raises:
        ValueError: Bad arguments, an unknown kind, a source that does not decode (named), a
            pair of another size (named), or a manifest that is not this format.
    """
    if isinstance(short_side, bool) or not isinstance(short_side, int) or short_side < 1:
        raise ValueError(f'short_side must be a positive int, got {short_side!r}.')
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f'jpeg_quality must lie in 1..100, got {jpeg_quality!r}.')
    folder = folder or osp.join(data_root, DEFAULT_FOLDER)
    old = _read_manifest(folder)
    settings = dict(short_side=short_side, jpeg_quality=jpeg_quality)
    keep_old = old is not None and all(old.get(k) == v for k, v in settings.items())
    files: Dict[str, dict] = dict(old['files']) if keep_old else {}
    outcome: Counter = Counter()
    tasks, seen = [], set()
    for path, kind in sources:
        if kind not in _KINDS:
            raise ValueError(f'"{path}": kind must be one of {list(_KINDS)}, got {kind!r}.')
        key = _source_key(path, data_root, kind)
        if key is None:
            outcome['not copied'] += 1
            continue
        if key in seen:
            continue
        seen.add(key)
        entry = files.get(key)
        if entry is not None and entry['kind'] == kind:
            stat = _stat(path)
            copy_ok = _copy_intact(entry, osp.join(folder, key))
            if stat == (entry['bytes'], entry['mtime_ns']) and copy_ok:
                outcome['up to date'] += 1
                continue
            if stat is not None and stat[0] == entry['bytes'] and copy_ok:
                with open(path, 'rb') as f:
                    if hashlib.sha256(f.read()).hexdigest() == entry['sha256']:
                        entry['mtime_ns'] = stat[1]
                        outcome['touched'] += 1
                        continue
        tasks.append((key, path, osp.join(folder, key), kind, short_side, jpeg_quality))

    def save() -> None:
        head = dict(format=_FORMAT, data_root=osp.abspath(data_root), **settings)
        lines = [f' {json.dumps(k)}: {json.dumps(v)}' for k, v in sorted(head.items())]
        entries = ',\n'.join(f'  {json.dumps(k)}: {json.dumps(v)}'
                              for k, v in sorted(files.items()))
        # One line per file: readable, and diffable between builds.
        text = '{\n' + ',\n'.join(lines) + ',\n "files": {\n' + entries + '\n }\n}\n'
        atomic_write_text(osp.join(folder, MANIFEST), text)

    log(f'{len(tasks)} of {len(seen)} files to convert under "{data_root}" into "{folder}" '
        f'(shorter side {short_side})' + ('' if keep_old or old is None else
                                          '; the settings changed, so every file is rebuilt'))
    start = time.perf_counter()
    # One OpenCV thread per worker process: the processes are the parallelism.
    pool = (multiprocessing.get_context('fork').Pool(workers, cv2.setNumThreads, (1, ))
            if workers > 0 and tasks else None)
    try:
        results = pool.imap_unordered(_convert, tasks, chunksize=4) if pool else map(
            _convert, tasks)

        def line(done: int) -> str:
            rate = done / (time.perf_counter() - start)
            return (f'{done}/{len(tasks)} converted ({rate:.1f} files/s, about '
                    f'{(len(tasks) - done) / rate:.0f} s left)')

        for key, entry in track(results, len(tasks), 'pre-resizing', log=log, every=500,
                                line=line):
            files[key] = entry
            outcome['copied' if entry['copy_bytes'] is not None else 'small'] += 1
        if tasks:
            log(f'{len(tasks)} converted in {time.perf_counter() - start:.1f} s')
    finally:
        if pool is not None:
            pool.terminate()
        save()
    for image, mask in pairs:
        keys = _source_key(image, data_root, 'image'), _source_key(mask, data_root, 'mask')
        shapes = [files.get(key, {}).get('shape') for key in keys]
        if None not in keys and shapes[0] != shapes[1]:
            raise ValueError(f'Mask "{mask}" is {shapes[1]} (HxW) but its image "{image}" is '
                             f'{shapes[0]}; expected the same size, so that their copies match.')
    return outcome


class PreresizedCache:
    """A cache folder's manifest, to look up the copies of a dataset's files.

    Args:
        folder (str): The cache folder (it holds ``manifest.json``).
        data_root (str): The dataset's root, under which the manifest's keys are paths.

    Raises:
        FileNotFoundError: No manifest in ``folder``.
        ValueError: The manifest is not this format.
    """

    def __init__(self, folder: str, data_root: str) -> None:
        manifest = _read_manifest(folder)
        if manifest is None:
            raise FileNotFoundError(f'No pre-resized cache in "{folder}" (no {MANIFEST}); '
                                    'build it with ' + _REBUILD.format('S') + ' --cache-dir '
                                    f'{folder}, or set preresized=True to use the default '
                                    'folder when present.')
        self.folder = folder
        self.data_root = data_root
        self.short_side = manifest['short_side']
        self.files = manifest['files']

    def copy_of(self, path: str,
                key: str) -> Optional[Tuple[Optional[str], Optional[Tuple[int, int]]]]:
        """The copy of ``path`` (manifest key ``key``), if the manifest knows its current
        version.

        Returns:
            tuple | None: (the copy's path, the original's (height, width)) for a copied file,
            (None, None) for one too small to be copied, None for a file that is not in the
            manifest, has changed since, or whose copy is missing.
        """
        entry = self.files.get(key)
        copy = osp.join(self.folder, key)
        if (entry is None or _stat(path) != (entry['bytes'], entry['mtime_ns'])
                or not _copy_intact(entry, copy)):
            return None
        if entry['copy_bytes'] is None:
            return None, None
        return copy, tuple(entry['shape'])


def use_preresized(data_list: List[dict],
                   data_root: str,
                   preresized: Union[bool, str],
                   owner: str,
                   keys: Sequence[str] = ('img_path', ),
                   source_shape: bool = False,
                   pipeline: Optional[object] = None) -> List[dict]:
    """Give a dataset's samples the paths of their pre-resized copies, where a cache has them.

    A sample gets copies only when every one of its ``keys`` has a current entry (so an image
    and its mask move together): the copy of ``key`` goes to ``CACHE_KEYS[key]``, and
    ``key`` keeps the original. Samples whose files the cache never copies (other formats,
    outside ``data_root``, no such key) are left alone; samples whose files changed since the
    cache was built, or that it lacks, are counted in a warning that names one. A pipeline
    with another loading transform than ``LoadImageStrict`` and ``LoadBinaryMask`` (which read
    the copies) gets none, and the log says why: its image and mask could come one from a copy
    and one from the original.

    Args:
        data_list (list[dict]): The samples; changed in place.
        data_root (str): The dataset's root.
        preresized (bool | str): True: the default folder (``<data_root>/.preresized``) if it
            has a manifest; False: none; a str: that folder, which must have one.
        owner (str): The dataset's name, for the log.
        keys (Sequence[str]): Path keys of :data:`CACHE_KEYS`, the first an image's, the others
            masks'. Defaults to ``('img_path',)``.
        source_shape (bool): Also record the original's (height, width) as ``source_shape``
            on samples whose image is read from a copy (segmentation tests, scored at the
            original size). Defaults to False.
        pipeline (Compose, optional): The dataset's pipeline, whose loading transforms are
            checked. Defaults to None (not checked).

    Returns:
        list[dict]: ``data_list``.
    """
    if preresized is False:
        return data_list
    if preresized is True:
        folder = osp.join(data_root, DEFAULT_FOLDER)
        if not osp.isfile(osp.join(folder, MANIFEST)):
            return data_list
    elif isinstance(preresized, str):
        folder = preresized
    else:
        raise ValueError(f'{owner}: preresized must be True, False or a cache folder, got '
                         f'{preresized!r}.')
    cache = PreresizedCache(folder, data_root)
    logger = MMLogger.get_current_instance()
    others = sorted({type(t).__name__ for t in getattr(pipeline, 'transforms', [])
                     if type(t).__name__.startswith('Load')
                     and not isinstance(t, (LoadImageStrict, LoadBinaryMask))})
    if others:
        logger.info(f'{owner}: the pre-resized cache "{folder}" is not used: the pipeline loads '
                    f'with {", ".join(others)}, which reads the originals; only LoadImageStrict '
                    'and LoadBinaryMask read the copies.')
        return data_list
    kinds = ['image'] + ['mask'] * (len(keys) - 1)
    stale, copied, candidates = [], 0, 0
    for info in data_list:
        paths = [info.get(key) for key in keys]
        if not all(paths):
            continue
        names = [_source_key(p, data_root, kind) for p, kind in zip(paths, kinds)]
        if None in names:
            continue
        candidates += 1
        found = [cache.copy_of(p, name) for p, name in zip(paths, names)]
        if None in found:
            stale.append(paths[found.index(None)])
            continue
        for key, (copy, _) in zip(keys, found):
            if copy is not None:
                info[CACHE_KEYS[key]] = copy
        copy, shape = found[0]
        if copy is not None:
            copied += 1
            if source_shape:
                info['source_shape'] = shape
    logger.info(f'{owner}: {copied} of {candidates} samples read from pre-resized copies in '
                f'"{folder}" (shorter side {cache.short_side}).')
    if stale:
        logger.warning(
            f'{owner}: {len(stale)} of {candidates} samples have files that changed since the '
            f'pre-resized cache "{folder}" was built, or that it lacks (e.g. "{stale[0]}"); '
            'they are read from the originals. Rebuild the cache with '
            + _REBUILD.format(cache.short_side) + '.')
    return data_list
