"""CBIS-DDSM: mass present or not in full-field mammograms, from TCIA's tables and DICOM tree.

What an image and its label are: TCIA's four case description tables list abnormalities, one
row each (a mammogram with two masses has two rows). An *image* is one mammogram, identified by
patient, breast side and view (``P_00001_LEFT_CC``). It is **positive** (``mass``) when any row
of the two mass tables names it, whatever the pathology (benign or malignant), and **negative**
(``no_mass``) when only the calcification tables do. TCIA distributes a mammogram that has both
kinds of abnormality twice, once per table family (``Mass-Training_P_..._LEFT_CC`` and
``Calc-Training_P_..._LEFT_CC``); the DICOM file read is the one of the first table naming the
image, in the order mass train, mass test, calc train, calc test (so a positive image is read
from a mass folder).
"""
import os
import os.path as osp
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import cv2

from medtrans.fileio import atomic_write_bytes
from medtrans.registry import DATASETS

from .classification import BaseClsDataset
from .transforms.dicom import read_dicom_uint8
from .utils import find_missing, read_csv_table, settle_problems

__all__ = ['CBISDDSMDataset', 'CbisImage', 'read_cbis_ddsm_table', 'read_cbis_ddsm_images',
           'find_cbis_ddsm_dicom', 'convert_cbis_ddsm_to_png', 'CBIS_DDSM_TABLES']

#: (table file, abnormality type, subject folder prefix) of TCIA's four case description
#: tables, in the order that chooses an image's DICOM file.
CBIS_DDSM_TABLES = (
    ('mass_case_description_train_set.csv', 'mass', 'Mass-Training'),
    ('mass_case_description_test_set.csv', 'mass', 'Mass-Test'),
    ('calc_case_description_train_set.csv', 'calcification', 'Calc-Training'),
    ('calc_case_description_test_set.csv', 'calcification', 'Calc-Test'),
)
# The columns read. The others (e.g. the density, spelled ``breast_density`` in the mass tables
# and ``breast density`` in the calcification tables, and the ROI and crop paths) are not.
_PATIENT, _SIDE, _VIEW = 'patient_id', 'left or right breast', 'image view'
_ABNORMALITY_ID, _ABNORMALITY_TYPE, _IMAGE = 'abnormality id', 'abnormality type', 'image file path'
_COLUMNS = (_PATIENT, _SIDE, _VIEW, _ABNORMALITY_ID, _ABNORMALITY_TYPE, _IMAGE)
_PATIENT_ID = re.compile(r'P_\d{5}')
_ABNORMALITY_NUMBER = re.compile(r'[1-9]\d*')
_IMAGE_FILE = re.compile(r'([^/]+)/[^/]+/[^/]+/[^/]+\.dcm')
_LAYOUT = """\
  <data_root>/
    mass_case_description_train_set.csv   mass_case_description_test_set.csv
    calc_case_description_train_set.csv   calc_case_description_test_set.csv
    CBIS-DDSM/<Subject ID>/.../*.dcm   the DICOM tree as the NBIA Data Retriever writes it, e.g.
        CBIS-DDSM/Mass-Training_P_00001_LEFT_CC/<study>/<series>/1-1.dcm
    CBIS-DDSM-png/P_00001_LEFT_CC.png  optional: tools/dataset_converters/cbis_ddsm_to_png.py"""


@dataclass
class CbisImage:
    """One mammogram of CBIS-DDSM, with its label.

    Args:
        sample_id (str): ``<patient>_<side>_<view>``, e.g. ``'P_00001_LEFT_CC'``.
        patient_id (str): e.g. ``'P_00001'``.
        has_mass (bool): Whether a mass table names the image.
        subject (str): The Subject ID folder of its DICOM file, e.g.
            ``'Mass-Training_P_00001_LEFT_CC'`` (the first part of ``image_file``).
        image_file (str): The table's ``image file path`` cell for the image.
        table (str): The table the DICOM file is chosen from.
        line (int): The line of that table naming the image (its first).
    """

    sample_id: str
    patient_id: str
    has_mass: bool
    subject: str
    image_file: str
    table: str
    line: int


def read_cbis_ddsm_table(path: str, abnormality_type: str,
                         prefix: str) -> List[Tuple[int, str, str, str]]:
    """Read one of TCIA's case description tables and check the columns used.

    Every row must have a patient id ``P_NNNNN``, side ``LEFT``/``RIGHT``, view ``CC``/``MLO``,
    an abnormality id 1, 2, ..., the table's abnormality type, and an ``image file path``
    ``<prefix>_<patient>_<side>_<view>/<study>/<series>/<name>.dcm``. An abnormality (image and
    abnormality id) is listed once, and all rows of an image name the same file.

    Args:
        path (str): The CSV file.
        abnormality_type (str): ``'mass'`` or ``'calcification'``.
        prefix (str): The Subject ID prefix of its images, e.g. ``'Mass-Training'``.

    Returns:
        list[tuple[int, str, str, str]]: (line, patient id, image id ``P_00001_LEFT_CC``, image
        file path) per row, in file order.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: A bad header or row, naming the file, the line and what was expected.
    """
    table = read_csv_table(path, _COLUMNS, what='CBIS-DDSM case description table',
                           layout=_LAYOUT)
    cols = [table.column(name) for name in _COLUMNS]
    rows: List[Tuple[int, str, str, str]] = []
    abnormalities: Dict[Tuple[str, str], int] = {}
    files: Dict[str, Tuple[int, str]] = {}
    for line, row in table.rows():
        patient, side, view, number, kind, image_file = (row[c] for c in cols)
        bad = next(((column, value, expected) for column, value, ok, expected in (
            (_PATIENT, patient, _PATIENT_ID.fullmatch(patient), 'P_ and 5 digits'),
            (_SIDE, side, side in ('LEFT', 'RIGHT'), 'LEFT or RIGHT'),
            (_VIEW, view, view in ('CC', 'MLO'), 'CC or MLO'),
            (_ABNORMALITY_ID, number, _ABNORMALITY_NUMBER.fullmatch(number), '1, 2, ...'),
            (_ABNORMALITY_TYPE, kind, kind == abnormality_type, abnormality_type),
        ) if not ok), None)
        if bad is not None:
            table.reject(line, '"{}" is {!r}; expected {}'.format(*bad))
            continue
        image_id = f'{patient}_{side}_{view}'
        subject = f'{prefix}_{image_id}'
        match = _IMAGE_FILE.fullmatch(image_file)
        if match is None or match.group(1) != subject:
            table.reject(line, f'"{_IMAGE}" is {image_file!r}; expected '
                               f'{subject}/<study>/<series>/<name>.dcm')
            continue
        if (image_id, number) in abnormalities:
            table.reject(line, f'repeats abnormality {number} of {image_id} (line '
                               f'{abnormalities[image_id, number]}); expected each once')
            continue
        abnormalities[image_id, number] = line
        first = files.setdefault(image_id, (line, image_file))
        if first[1] != image_file:
            table.reject(line, f'names the file {image_file!r} for {image_id}, but line '
                               f'{first[0]} names {first[1]!r}; expected one file per image')
            continue
        rows.append((line, patient, image_id, image_file))
    return rows


def read_cbis_ddsm_images(data_root: str) -> List[CbisImage]:
    """Read the four tables and list the mammograms with their labels.

    See the module docstring for what an image, its label and its DICOM file are.

    Args:
        data_root (str): The folder holding the four tables.

    Returns:
        list[CbisImage]: One entry per mammogram, sorted by ``sample_id``.

    Raises:
        FileNotFoundError: A table is missing.
        ValueError: A bad table (see :func:`read_cbis_ddsm_table`).
    """
    images: Dict[str, CbisImage] = {}
    for name, abnormality_type, prefix in CBIS_DDSM_TABLES:
        path = osp.join(data_root, name)
        rows = read_cbis_ddsm_table(path, abnormality_type, prefix)
        for line, patient, image_id, image_file in rows:
            if image_id not in images:
                images[image_id] = CbisImage(
                    sample_id=image_id, patient_id=patient,
                    has_mass=abnormality_type == 'mass', subject=image_file.split('/', 1)[0],
                    image_file=image_file, table=path, line=line)
    # Positive images are exactly those a mass table names: the mass tables come first.
    return [images[key] for key in sorted(images)]


def find_cbis_ddsm_dicom(dicom_root: str, image: CbisImage) -> str:
    """The DICOM file of a mammogram: the one ``.dcm`` file under its Subject ID folder.

    The NBIA Data Retriever writes ``<Subject ID>/<study date-description-UID>/<series
    description-UID>/1-1.dcm``, while the tables name ``<Subject ID>/<study UID>/<series
    UID>/000000.dcm``; both have one file under the Subject ID folder (ROIs and crops are in
    other folders, ``<Subject ID>_1``), so that is where it is looked for.

    Args:
        dicom_root (str): The folder holding the Subject ID folders (``<data_root>/CBIS-DDSM``).
        image (CbisImage): The mammogram.

    Returns:
        str: The path of the file.

    Raises:
        FileNotFoundError: No ``.dcm`` file under the folder.
        ValueError: More than one.
    """
    folder = osp.join(dicom_root, image.subject)
    found = sorted(osp.join(parent, name) for parent, _, names in os.walk(folder)
                   for name in names
                   if name.lower().endswith('.dcm') and osp.isfile(osp.join(parent, name)))
    if not found:
        raise FileNotFoundError(
            f'CBIS-DDSM case description table "{image.table}" line {image.line}: no DICOM file '
            f'(*.dcm) under "{folder}"; expected the mammogram {image.sample_id} there, as '
            f'"{osp.join(dicom_root, image.image_file)}" (the table\'s path) or '
            '<study>/<series>/1-1.dcm (as the NBIA Data Retriever writes it).')
    if len(found) > 1:
        raise ValueError(
            f'CBIS-DDSM: {len(found)} DICOM files under "{folder}" ({found[:3]}); expected the '
            f'one full mammogram {image.sample_id} of "{image.table}" line {image.line}.')
    return found[0]


def _convert_one(args: Tuple[str, str, Optional[int]]) -> str:
    """Write one mammogram as an 8-bit grey PNG; return the PNG path."""
    dicom_path, png_path, max_side = args
    img = read_dicom_uint8(dicom_path)
    if max_side is not None and max(img.shape) > max_side:
        scale = max_side / max(img.shape)
        size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode('.png', img)
    if not ok:
        raise ValueError(f'"{dicom_path}" could not be encoded as PNG.')
    atomic_write_bytes(png_path, encoded.tobytes())
    return png_path


def convert_cbis_ddsm_to_png(data_root: str,
                             out_dir: Optional[str] = None,
                             dicom_dir: str = 'CBIS-DDSM',
                             workers: int = 0,
                             max_side: Optional[int] = None,
                             log: Optional[Callable[[str], None]] = None) -> int:
    """Convert every mammogram of the tables to an 8-bit grey PNG ``<sample_id>.png``.

    The pixels are those ``LoadDicom`` gives (:func:`~medtrans.datasets.transforms.dicom.
    read_dicom_uint8`), so training on the PNGs (``CBISDDSMDataset(img_format='png')``) sees
    the same images. With ``max_side``, larger mammograms are shrunk (area interpolation, aspect
    kept) so that their longer side is ``max_side``: much less to read and decode when the
    pipeline resizes to 256 anyway, at the cost of that exactness. Every DICOM file is located
    before the first is converted, so a missing one stops the conversion at once; each PNG is
    written atomically.

    Args:
        data_root (str): The CBIS-DDSM folder (tables and DICOM tree).
        out_dir (str, optional): Output folder. Defaults to ``<data_root>/CBIS-DDSM-png``,
            where ``CBISDDSMDataset(img_format='png')`` looks.
        dicom_dir (str): The DICOM tree, relative to ``data_root``. Defaults to ``'CBIS-DDSM'``.
        workers (int): Processes converting in parallel; 0 converts in this process.
            Defaults to 0.
        max_side (int, optional): Longer side of the PNGs at most; None keeps the full size.
            Defaults to None.
        log (Callable[[str], None], optional): Receives progress lines. Defaults to None.

    Returns:
        int: The number of PNGs written.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f'convert_cbis_ddsm_to_png: max_side must be positive, got {max_side}.')
    log = log or (lambda line: None)
    out_dir = out_dir or osp.join(data_root, 'CBIS-DDSM-png')
    dicom_root = osp.join(data_root, dicom_dir)
    jobs = [(find_cbis_ddsm_dicom(dicom_root, image), osp.join(out_dir, image.sample_id + '.png'),
             max_side) for image in read_cbis_ddsm_images(data_root)]
    os.makedirs(out_dir, exist_ok=True)
    if workers > 0:
        with ProcessPoolExecutor(workers) as pool:
            done = pool.map(_convert_one, jobs, chunksize=4)
            for count, _ in enumerate(done, start=1):
                if count % 100 == 0:
                    log(f'{count}/{len(jobs)} mammograms converted')
    else:
        for count, job in enumerate(jobs, start=1):
            _convert_one(job)
            if count % 100 == 0:
                log(f'{count}/{len(jobs)} mammograms converted')
    log(f'{len(jobs)} mammograms written to "{out_dir}"')
    return len(jobs)


@DATASETS.register_module()
class CBISDDSMDataset(BaseClsDataset):
    """CBIS-DDSM (Lee et al. 2017) full mammograms: mass present or not (binary).

    The dataset is published by TCIA at
    https://www.cancerimagingarchive.net/collection/cbis-ddsm/: the DICOM tree (downloaded with
    the NBIA Data Retriever) and four case description tables. Under ``data_root``:

    .. code-block:: none

        mass_case_description_train_set.csv   mass_case_description_test_set.csv
        calc_case_description_train_set.csv   calc_case_description_test_set.csv
        CBIS-DDSM/<Subject ID>/.../*.dcm       (dicom_dir)
        CBIS-DDSM-png/<sample_id>.png          (png_dir; made by
                                               tools/dataset_converters/cbis_ddsm_to_png.py)

    The tables are read as TCIA publishes them (quoted multi-line ROI paths, the density
    column spelled two ways); what an image and its label are is in the module docstring: 3,032
    mammograms of 1,566 patients, 1,592 with a mass. A sample's ``img_path`` is the image's
    DICOM file (found by :func:`find_cbis_ddsm_dicom`), read by ``LoadDicom``, or with
    ``img_format='png'`` its converted PNG, read by ``LoadImageStrict``; both give the same
    pixels.

    Splits: ``train``/``val``/``test`` divide all images 80/10/10, stratified by label and
    grouped by patient (no patient in two splits); ``all`` is every image. TCIA's own train/test
    division is not offered: its training and test tables share 31 patients (and some mammograms,
    through the other abnormality family), so it is not patient-disjoint.

    Args:
        data_root (str): The CBIS-DDSM folder (see above).
        split (str): ``'train'``, ``'val'``, ``'test'`` or ``'all'``. Defaults to ``'train'``.
        img_format (str): ``'dicom'`` (the DICOM tree) or ``'png'`` (the converted images).
            Defaults to ``'dicom'``.
        dicom_dir (str): The DICOM tree, relative to ``data_root``. Defaults to ``'CBIS-DDSM'``.
        png_dir (str): The converted images, relative to ``data_root``. Defaults to
            ``'CBIS-DDSM-png'``.
        **kwargs: Arguments of :class:`~medtrans.datasets.classification.BaseClsDataset`
            (``split_seed``, ``split_file``, ``pipeline``, ...).

    Raises:
        FileNotFoundError: ``data_root``, a table or an image file is missing.
        ValueError: Bad arguments, a bad table row (naming the table and the line), several
            DICOM files for one image, or an empty split.
    """

    METAINFO = dict(classes=('no_mass', 'mass'))
    MULTI_LABEL = False
    SPLIT_FRACTIONS = dict(train=0.8, val=0.1, test=0.1)
    SPLIT_RECORD = 'cbis_ddsm'
    LAYOUT = _LAYOUT

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 img_format: str = 'dicom',
                 dicom_dir: str = 'CBIS-DDSM',
                 png_dir: str = 'CBIS-DDSM-png',
                 **kwargs) -> None:
        if img_format not in ('dicom', 'png'):
            raise ValueError(f"CBISDDSMDataset: img_format must be 'dicom' or 'png', got "
                             f'{img_format!r}.')
        self.img_format = img_format
        self.dicom_dir = dicom_dir
        self.png_dir = png_dir
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _png_paths(self, images: List[CbisImage]) -> List[Optional[str]]:
        folder = osp.join(self.data_root, self.png_dir)
        paths: List[Optional[str]] = [osp.join(folder, image.sample_id + '.png')
                                      for image in images]
        problems = []
        for i in find_missing(paths):
            problems.append(FileNotFoundError(
                f'CBIS-DDSM case description table "{images[i].table}" line {images[i].line}: '
                f'converted image "{paths[i]}" not found; expected every mammogram there as '
                '<sample_id>.png. Make them with `python tools/dataset_converters/'
                f'cbis_ddsm_to_png.py {self.data_root}`, or read the DICOM files with '
                "img_format='dicom'."))
            paths[i] = None
        settle_problems(problems, f'the converted images "{folder}"')
        return paths

    def _dicom_paths(self, images: List[CbisImage]) -> List[Optional[str]]:
        dicom_root = osp.join(self.data_root, self.dicom_dir)
        paths: List[Optional[str]] = []
        problems = []
        for image in images:
            try:
                paths.append(find_cbis_ddsm_dicom(dicom_root, image))
            except (FileNotFoundError, ValueError) as err:
                problems.append(err)
                paths.append(None)
        settle_problems(problems, f'the DICOM tree "{dicom_root}"')
        return paths

    def load_samples(self) -> List[dict]:
        """Read the four tables and locate every image file.

        Returns:
            list[dict]: Samples with ``img_path``, ``sample_id``, ``gt_label`` (1: mass) and
            ``patient_id``.
        """
        images = read_cbis_ddsm_images(self.data_root)
        paths = (self._png_paths if self.img_format == 'png' else self._dicom_paths)(images)
        return [
            dict(img_path=path, sample_id=image.sample_id, gt_label=int(image.has_mass),
                 patient_id=image.patient_id) for image, path in zip(images, paths)
            if path is not None
        ]

