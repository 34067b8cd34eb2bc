"""CheXpert: 14 observations on chest radiographs, multi-label with uncertain labels."""
import operator
import os.path as osp
import re
from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np

from medtrans.registry import DATASETS

from .classification import BaseClsDataset
from .utils import find_missing, read_csv_table, settle_problems

__all__ = ['CheXpertDataset', 'read_chexpert_csv', 'apply_uncertainty_policy', 'ChexpertTable',
           'CHEXPERT_OBSERVATIONS', 'CHEXPERT_COMPETITION_TASKS', 'CHEXPERT_VIEWS',
           'UNCERTAINTY_POLICIES']

#: The 14 observations, in the order of the published label tables (and of ``gt_score``).
CHEXPERT_OBSERVATIONS = (
    'No Finding', 'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity', 'Lung Lesion',
    'Edema', 'Consolidation', 'Pneumonia', 'Atelectasis', 'Pneumothorax', 'Pleural Effusion',
    'Pleural Other', 'Fracture', 'Support Devices')
#: The five observations of the CheXpert competition (Irvin et al. 2019).
CHEXPERT_COMPETITION_TASKS = ('Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema',
                              'Pleural Effusion')
#: Uncertainty policies of Irvin et al. 2019 (U-Zeros, U-Ones, U-Ignore): what an uncertain
#: (-1) label becomes.
UNCERTAINTY_POLICIES = ('zeros', 'ones', 'ignore')
#: The values of the ``Frontal/Lateral`` column.
CHEXPERT_VIEWS = ('Frontal', 'Lateral')

_PATH_COLUMN, _VIEW_COLUMN = 'Path', 'Frontal/Lateral'
# Label cells as published (1.0, 0.0, -1.0, blank), and their integer spellings; NaN: blank.
_CODES = {'1.0': 1.0, '1': 1.0, '0.0': 0.0, '0': 0.0, '-1.0': -1.0, '-1': -1.0, '': np.nan}
_PATH = re.compile(r'(CheXpert-v1\.0(?:-small)?)/(train|valid)/(patient\d{5})/(study\d+)/'
                   r'(view\d+_(?:frontal|lateral)\.jpg)')
_LAYOUT = """\
  <data_root>/                 (CheXpert-v1.0-small/ or CheXpert-v1.0/ as downloaded)
    train.csv  valid.csv
    train/patient00001/study1/view1_frontal.jpg ...
    valid/patient64541/study1/view1_frontal.jpg ..."""


@dataclass
class ChexpertTable:
    """The rows of a CheXpert label table, parsed and checked.

    Args:
        path (str): The table.
        lines (list[int]): Line of each row in the file.
        rel_paths (list[str]): Each row's image, relative to the data folder (the ``Path``
            cell without its first part, ``CheXpert-v1.0-small/``).
        patient_ids (list[str]): Each row's patient (``patientNNNNN``).
        views (list[str]): Each row's ``Frontal/Lateral`` cell.
        labels (np.ndarray): float32 (rows, 14), in :data:`CHEXPERT_OBSERVATIONS` order: 1, 0,
            -1 (uncertain) or NaN (blank: not mentioned).
    """

    path: str
    lines: List[int]
    rel_paths: List[str]
    patient_ids: List[str]
    views: List[str]
    labels: np.ndarray


def read_chexpert_csv(path: str, folder: str = 'train') -> ChexpertTable:
    """Read a CheXpert ``train.csv`` or ``valid.csv`` as published.

    Columns are found by name: ``Path``, ``Frontal/Lateral`` and the 14 observations must be
    present; the others (``Sex``, ``Age``, ``AP/PA``) are not read. Every ``Path`` must be
    ``CheXpert-v1.0[-small]/<folder>/patientNNNNN/studyN/viewN_{frontal,lateral}.jpg`` and
    appear once; ``Frontal/Lateral`` must be ``Frontal`` or ``Lateral``; a label cell must be
    1.0, 0.0, -1.0 (or 1, 0, -1) or blank.

    Args:
        path (str): The CSV file.
        folder (str): The image folder its paths must name: ``'train'`` or ``'valid'``.
            Defaults to ``'train'``.

    Returns:
        ChexpertTable: The rows, in file order.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: A bad header or row, naming the file, the line, the column and what was
            expected.
    """
    table = read_csv_table(path, (_PATH_COLUMN, _VIEW_COLUMN) + CHEXPERT_OBSERVATIONS,
                           what='CheXpert label table', layout=_LAYOUT)
    path_col, view_col = table.column(_PATH_COLUMN), table.column(_VIEW_COLUMN)
    label_cells = operator.itemgetter(*(table.column(name) for name in CHEXPERT_OBSERVATIONS))
    lines, rel_paths, patient_ids, views, cells = [], [], [], [], []
    first_line: Dict[str, int] = {}
    for line, row in table.rows():
        image = row[path_col]
        match = _PATH.fullmatch(image)
        if match is None or match.group(2) != folder:
            table.reject(line, f'Path is {image!r}; expected CheXpert-v1.0[-small]/{folder}/'
                               'patientNNNNN/studyN/viewN_(frontal|lateral).jpg')
            continue
        rel_path = image.split('/', 1)[1]
        if rel_path in first_line:
            table.reject(line, f'repeats the image "{image}" of line {first_line[rel_path]}; '
                               'expected each image once')
            continue
        first_line[rel_path] = line
        view = row[view_col]
        if view not in CHEXPERT_VIEWS:
            table.reject(line, f'{_VIEW_COLUMN} is {view!r}; expected one of {CHEXPERT_VIEWS}')
            continue
        lines.append(line)
        rel_paths.append(rel_path)
        patient_ids.append(match.group(3))
        views.append(view)
        cells.extend(label_cells(row))
    # One pass over all label cells; the rare bad ones are located afterwards.
    values = list(map(_CODES.get, cells))
    num_cols = len(CHEXPERT_OBSERVATIONS)
    bad_rows = set()
    if None in values:
        for bad in (i for i, value in enumerate(values) if value is None):
            row, col = divmod(bad, num_cols)
            bad_rows.add(row)
            table.reject(lines[row], f'"{CHEXPERT_OBSERVATIONS[col]}" is {cells[bad]!r}; '
                                     'expected 1.0 (positive), 0.0 (negative), -1.0 '
                                     '(uncertain) or blank (not mentioned)')
        table.settle()
        keep = [row for row in range(len(lines)) if row not in bad_rows]
        lines, rel_paths, patient_ids, views = (
            [column[row] for row in keep] for column in (lines, rel_paths, patient_ids, views))
        values = [value for row in keep for value in values[row * num_cols:(row + 1) * num_cols]]
    labels = np.array(values, np.float32).reshape(len(lines), num_cols)
    return ChexpertTable(path=path, lines=lines, rel_paths=rel_paths, patient_ids=patient_ids,
                         views=views, labels=labels)


def apply_uncertainty_policy(labels: np.ndarray, policy: str) -> np.ndarray:
    """Turn CheXpert labels into ``gt_score`` targets.

    Blank (not mentioned, NaN) becomes 0 (negative) under every policy, as in Irvin et al.
    2019. Uncertain (-1) becomes 0 under ``'zeros'`` (U-Zeros), 1 under ``'ones'`` (U-Ones),
    and stays -1 under ``'ignore'`` (U-Ignore): an entry that the masked loss and the metrics
    leave out.

    Args:
        labels (np.ndarray): Labels of :func:`read_chexpert_csv` (1, 0, -1 or NaN).
        policy (str): One of :data:`UNCERTAINTY_POLICIES`.

    Returns:
        np.ndarray: float32 of the same shape, with entries 1, 0 (and -1 for ``'ignore'``).
    """
    if policy not in UNCERTAINTY_POLICIES:
        raise ValueError(f'uncertainty policy must be one of {UNCERTAINTY_POLICIES}, got '
                         f'{policy!r}.')
    uncertain = {'zeros': 0.0, 'ones': 1.0, 'ignore': -1.0}[policy]
    scores = np.nan_to_num(labels, nan=0.0).astype(np.float32)
    scores[scores == -1] = uncertain
    return scores


@DATASETS.register_module()
class CheXpertDataset(BaseClsDataset):
    """CheXpert chest radiographs (Irvin et al. 2019), 14 observations, multi-label.

    The dataset is published at https://stanfordmlgroup.github.io/competitions/chexpert/.
    ``data_root`` is the downloaded folder, ``CheXpert-v1.0-small/`` or ``CheXpert-v1.0/``:

    .. code-block:: none

        train.csv  valid.csv
        train/patient00001/study1/view1_frontal.jpg ...
        valid/patient64541/study1/view1_frontal.jpg ...

    ``Path`` in the tables is relative to the folder holding ``data_root``
    (``CheXpert-v1.0-small/train/...``): its first part is dropped and the rest is read under
    ``data_root``, so the folder may be renamed. Labels per observation: 1.0 positive, 0.0
    negative, -1.0 uncertain, blank not mentioned; blank becomes 0 and uncertain follows
    ``uncertainty`` (:func:`apply_uncertainty_policy`). ``gt_score`` has the 14 entries of
    :data:`CHEXPERT_OBSERVATIONS`, in the tables' order.

    Splits: ``train``/``val``/``test`` divide ``train.csv`` 80/10/10 by patient (the
    ``patientNNNNN`` part of the path), so no patient is in two of them; ``all`` is the whole of
    ``train.csv``; ``official_val`` is ``valid.csv`` (the publisher's validation set, 234 images
    labelled by radiologists, without uncertain or blank labels). ``views`` selects images before
    the split is made, so a split record belongs to one choice of views.

    Args:
        data_root (str): The CheXpert folder (see above).
        split (str): ``'train'``, ``'val'``, ``'test'``, ``'all'`` or ``'official_val'``.
            Defaults to ``'train'``.
        uncertainty (str): ``'zeros'`` (U-Zeros, the study's), ``'ones'`` (U-Ones) or
            ``'ignore'`` (U-Ignore: uncertain entries are -1 in ``gt_score``, left out by the
            masked loss and the metrics). Defaults to ``'zeros'``.
        views (Sequence[str]): The views kept, among ``'Frontal'`` and ``'Lateral'`` (the
            ``Frontal/Lateral`` column). Defaults to both.
        **kwargs: Arguments of :class:`~medtrans.datasets.classification.BaseClsDataset`
            (``split_seed``, ``split_file``, ``pipeline``, ...).

    Raises:
        FileNotFoundError: ``data_root``, a table or an image is missing.
        ValueError: Bad arguments, a bad row (naming the table, the line and the column), or an
            empty split.
    """

    METAINFO = dict(classes=CHEXPERT_OBSERVATIONS)
    MULTI_LABEL = True
    SPLIT_FRACTIONS = dict(train=0.8, val=0.1, test=0.1)
    SPLIT_RECORD = 'chexpert'
    LAYOUT = _LAYOUT

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 uncertainty: str = 'zeros',
                 views: Sequence[str] = CHEXPERT_VIEWS,
                 **kwargs) -> None:
        if uncertainty not in UNCERTAINTY_POLICIES:
            raise ValueError(f'CheXpertDataset: uncertainty must be one of '
                             f'{UNCERTAINTY_POLICIES}, got {uncertainty!r}.')
        if isinstance(views, str) or not views or any(v not in CHEXPERT_VIEWS for v in views):
            raise ValueError(f'CheXpertDataset: views must be a non-empty sequence of '
                             f'{CHEXPERT_VIEWS}, got {views!r}.')
        self.uncertainty = uncertainty
        self.views = tuple(views)
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _read(self, csv_name: str, folder: str) -> List[dict]:
        """The samples of one table, of the selected views, with their images checked."""
        table = read_chexpert_csv(osp.join(self.data_root, csv_name), folder)
        keep = [i for i, view in enumerate(table.views) if view in self.views]
        img_paths = [osp.join(self.data_root, table.rel_paths[i]) for i in keep]
        missing = find_missing(img_paths)
        settle_problems([
            FileNotFoundError(f'CheXpert label table "{table.path}" line '
                              f'{table.lines[keep[i]]}: image "{img_paths[i]}" not found; '
                              f'expected every image of the table under "{self.data_root}".')
            for i in missing
        ], f'CheXpert label table "{table.path}"')
        scores = apply_uncertainty_policy(table.labels, self.uncertainty)
        missing_set = set(missing)
        return [
            dict(img_path=img_path, sample_id=table.rel_paths[i], gt_score=scores[i],
                 patient_id=table.patient_ids[i], view=table.views[i])
            for n, (i, img_path) in enumerate(zip(keep, img_paths)) if n not in missing_set
        ]

    def load_samples(self) -> List[dict]:
        """Read ``train.csv``: the set that ``train``/``val``/``test`` divide.

        Returns:
            list[dict]: Samples with ``img_path``, ``sample_id`` (the path under
            ``data_root``), ``gt_score``, ``patient_id`` and ``view``.
        """
        return self._read('train.csv', 'train')

    def official_splits(self) -> Dict[str, List[dict]]:
        """Read ``valid.csv``, the publisher's validation set.

        Returns:
            dict[str, list[dict]]: ``{'official_val': samples}``.
        """
        return {'official_val': self._read('valid.csv', 'valid')}
