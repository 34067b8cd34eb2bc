"""A tiny CBIS-DDSM in TCIA's layout, for the fuzz tests and unit tests.

:func:`cbis_ddsm_layout` writes the four case description tables with TCIA's quirks (the
density column spelled ``breast_density`` in the mass tables and ``breast density`` in the
calcification tables, ROI and crop paths quoted over two lines) and 16-bit DICOM mammograms at
the paths the tables name (``CBIS-DDSM/<Subject ID>/<study UID>/<series UID>/000000.dcm``),
MONOCHROME1 and MONOCHROME2, with and without a window.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import numpy as np

from .base import SyntheticLayout
from .classification import write_csv

__all__ = ['cbis_ddsm_layout', 'cbis_ddsm_row', 'cbis_uid', 'write_mammogram_dicom',
           'MASS_HEADER', 'CALC_HEADER', 'CBIS_LAYOUT_IMAGES']

#: Headers of TCIA's mass and calcification tables, spelled as published.
MASS_HEADER = ('patient_id', 'breast_density', 'left or right breast', 'image view',
               'abnormality id', 'abnormality type', 'mass shape', 'mass margins', 'assessment',
               'pathology', 'subtlety', 'image file path', 'cropped image file path',
               'ROI mask file path')
CALC_HEADER = ('patient_id', 'breast density', 'left or right breast', 'image view',
               'abnormality id', 'abnormality type', 'calc type', 'calc distribution',
               'assessment', 'pathology', 'subtlety', 'image file path',
               'cropped image file path', 'ROI mask file path')

#: The layout's abnormalities: (table, patient, side, view, abnormality id). Two masses on
#: P_00001_LEFT_CC; P_00003_LEFT_MLO is in a calcification and a mass table (positive);
#: P_00002_RIGHT_CC and P_00004_RIGHT_CC only have calcifications (negative).
CBIS_LAYOUT_IMAGES = (
    ('mass_case_description_train_set.csv', 'P_00001', 'LEFT', 'CC', 1),
    ('mass_case_description_train_set.csv', 'P_00001', 'LEFT', 'CC', 2),
    ('mass_case_description_train_set.csv', 'P_00001', 'LEFT', 'MLO', 1),
    ('mass_case_description_test_set.csv', 'P_00003', 'LEFT', 'MLO', 1),
    ('calc_case_description_train_set.csv', 'P_00002', 'RIGHT', 'CC', 1),
    ('calc_case_description_test_set.csv', 'P_00003', 'LEFT', 'MLO', 1),
    ('calc_case_description_test_set.csv', 'P_00004', 'RIGHT', 'CC', 1),
)
_PREFIX = {'mass_case_description_train_set.csv': 'Mass-Training',
           'mass_case_description_test_set.csv': 'Mass-Test',
           'calc_case_description_train_set.csv': 'Calc-Training',
           'calc_case_description_test_set.csv': 'Calc-Test'}


def write_mammogram_dicom(path: str,
                          pixels: np.ndarray,
                          photometric: str = 'MONOCHROME2',
                          window: Optional[Tuple[float, float]] = None,
                          rescale: Optional[Tuple[float, float]] = None,
                          patient_id: str = 'P_00001') -> None:
    """Write a grey image as a DICOM file (Explicit VR Little Endian, with file meta).

    Args:
        path (str): The file; parent folders are created.
        pixels (np.ndarray): uint16, int16 or uint8, HxW.
        photometric (str): ``'MONOCHROME1'`` or ``'MONOCHROME2'``. Defaults to
            ``'MONOCHROME2'``.
        window (tuple[float, float], optional): (WindowCenter, WindowWidth). Defaults to None.
        rescale (tuple[float, float], optional): (RescaleSlope, RescaleIntercept). Defaults to
            None.
        patient_id (str): PatientID. Defaults to ``'P_00001'``.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    # Digital Mammography X-Ray Image Storage - For Presentation.
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.1.2'
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[path])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient_id
    ds.Modality = 'MG'
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 8 * pixels.dtype.itemsize
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == 'i')
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder('<')).tobytes()
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def cbis_uid(rng: np.random.RandomState) -> str:
    """A UID in the form of CBIS-DDSM's (the collection's root, then 38 digits)."""
    return ('1.3.6.1.4.1.9590.100.1.2.' + str(rng.randint(1, 10))
            + ''.join(map(str, rng.randint(0, 10, 37))))


def cbis_ddsm_row(table: str, patient: str, side: str, view: str, number: int,
                  image_file: str, rng: np.random.RandomState) -> List[str]:
    """A row of a case description table in TCIA's format.

    Args:
        table (str): The table's file name.
        patient (str): ``P_NNNNN``.
        side (str): ``LEFT`` or ``RIGHT``.
        view (str): ``CC`` or ``MLO``.
        number (int): The abnormality id.
        image_file (str): The ``image file path`` cell.
        rng (np.random.RandomState): Draws the UIDs of the ROI and crop paths.

    Returns:
        list[str]: The 14 cells.
    """
    roi = f'{_PREFIX[table]}_{patient}_{side}_{view}_{number}/{cbis_uid(rng)}/{cbis_uid(rng)}'
    if table.startswith('mass'):
        # As published: the ROI mask path of the mass tables ends with a line break.
        return [patient, '3', side, view, str(number), 'mass', 'IRREGULAR', 'SPICULATED', '4',
                'MALIGNANT', '4', image_file, roi + '/000000.dcm', roi + '/000001.dcm\n']
    # ... and the cropped image path of the calcification tables.
    return [patient, '2', side, view, str(number), 'calcification', 'PLEOMORPHIC', 'CLUSTERED',
            '4', 'BENIGN', '3', image_file, roi + '/000001.dcm\n', roi + '/000000.dcm']


def cbis_ddsm_layout(root: str) -> SyntheticLayout:
    """Write the tables of :data:`CBIS_LAYOUT_IMAGES` and a DICOM file for every image they name.

    Args:
        root (str): The data folder.

    Returns:
        SyntheticLayout: The four tables and the five DICOM files the dataset reads (a
        mammogram in two tables is written twice, as TCIA does; only the mass copy is read),
        read as the ``all`` split with ``LoadDicom``.
    """
    os.makedirs(root, exist_ok=True)
    rng = np.random.RandomState(0)
    rows: Dict[str, List[List[str]]] = {table: [] for table in _PREFIX}
    files: Dict[str, str] = {}
    for table, patient, side, view, number in CBIS_LAYOUT_IMAGES:
        subject = f'{_PREFIX[table]}_{patient}_{side}_{view}'
        image_file = files.setdefault(
            subject, f'{subject}/{cbis_uid(rng)}/{cbis_uid(rng)}/000000.dcm')
        rows[table].append(cbis_ddsm_row(table, patient, side, view, number, image_file, rng))
    read: Dict[str, str] = {}
    styles = (dict(photometric='MONOCHROME2', window=(2048, 4096)),
              dict(photometric='MONOCHROME1'),
              dict(photometric='MONOCHROME2', rescale=(1, -1024)))
    for table, table_rows in rows.items():
        header = MASS_HEADER if table.startswith('mass') else CALC_HEADER
        write_csv(osp.join(root, table), [header, *table_rows])
        for row in table_rows:
            path = osp.join(root, 'CBIS-DDSM', row[11])
            if osp.exists(path):
                continue  # the same image, a second abnormality
            image_id = '_'.join(row[11].split('/', 1)[0].split('_')[1:])
            pixels = (rng.randint(0, 4096, (5, 4)).repeat(8, 0).repeat(8, 1)
                      + rng.randint(0, 64, (40, 32))).astype(np.uint16)
            write_mammogram_dicom(path, pixels, patient_id=row[0],
                                  **styles[len(read) % len(styles)])
            read.setdefault(image_id, path)
    return SyntheticLayout(
        root=root,
        dataset_cfg=dict(data_root=root, split='all'),
        pipeline=[dict(type='LoadDicom')],
        target_keys=('gt_label', ),
        dicom_files=sorted(read.values()),
        label_tables=[osp.join(root, table) for table in _PREFIX])
