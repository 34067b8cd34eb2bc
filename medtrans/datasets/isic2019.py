"""ISIC 2019: skin lesion classification of dermoscopic images into nine diagnoses."""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from medtrans.registry import DATASETS

from .classification import BaseClsDataset
from .utils import CsvTable, image_paths, read_csv_table

__all__ = ['ISIC2019Dataset', 'read_isic2019_ground_truth', 'read_isic2019_lesions',
           'ISIC2019_CLASSES']

#: The diagnosis columns of the ground-truth table, in its order (UNK has no training image).
ISIC2019_CLASSES = ('MEL', 'NV', 'BCC', 'AK', 'BKL', 'DF', 'VASC', 'SCC', 'UNK')
_GROUND_TRUTH = 'ISIC_2019_Training_GroundTruth.csv'
_METADATA = 'ISIC_2019_Training_Metadata.csv'
_IMAGES = 'ISIC_2019_Training_Input'
# Some images were published reduced in size, their ids marked with this suffix.
_DOWNSAMPLED = '_downsampled'
# One-hot cells as the published tables write them: integers in one copy, floats in another.
_CELLS = {'0': 0, '1': 1, '0.0': 0, '1.0': 1}

_LAYOUT = """\
  <data_root>/
    ISIC_2019_Training_GroundTruth.csv   image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK (one-hot)
    ISIC_2019_Training_Input/<image>.jpg
    ISIC_2019_Training_Metadata.csv      image,...,lesion_id,... (unless lesion_groups=False)"""
#: Where the tables are published; the metadata is the challenge's "Training Metadata".
_SOURCE = 'https://challenge.isic-archive.com/data/#2019'


def read_isic2019_ground_truth(path: str) -> Tuple[CsvTable, List[Tuple[int, str, int]]]:
    """Read the one-hot ground-truth table.

    Args:
        path (str): ``ISIC_2019_Training_GroundTruth.csv``.

    Returns:
        tuple: The table, and (line, image id, class index) per row, in file order. The class
        index is into :data:`ISIC2019_CLASSES`.

    Raises:
        FileNotFoundError: The file is missing.
        ValueError: A header other than ``image`` and the nine diagnoses, a cell other than
            0/1 (or 0.0/1.0), or a row without exactly one 1; each names the file and line.
    """
    table = read_csv_table(path, ('image', ) + ISIC2019_CLASSES, 'ISIC 2019 ground-truth table',
                           _LAYOUT, other_columns=False)
    id_col = table.column('image')
    class_cols = [table.column(name) for name in ISIC2019_CLASSES]
    rows = []
    for line, row in table.rows():
        values = [_CELLS.get(row[col]) for col in class_cols]
        if None in values:
            index = values.index(None)
            table.reject(line, f'{ISIC2019_CLASSES[index]} is {row[class_cols[index]]!r}; '
                               'expected 0 or 1 (or 0.0 or 1.0)', sample_id=row[id_col])
            continue
        positives = [index for index, value in enumerate(values) if value]
        if len(positives) != 1:
            names = [ISIC2019_CLASSES[i] for i in positives]
            table.reject(line, f'image "{row[id_col]}" has {len(positives)} positive '
                               f'diagnoses {names}; expected exactly one 1 among '
                               f'{list(ISIC2019_CLASSES)}', sample_id=row[id_col])
            continue
        rows.append((line, row[id_col], positives[0]))
    return table, rows


def _canonical(image_id: str) -> str:
    return image_id[:-len(_DOWNSAMPLED)] if image_id.endswith(_DOWNSAMPLED) else image_id


def read_isic2019_lesions(path: str, ground_truth: CsvTable,
                          rows: Sequence[Tuple[int, str, int]]) -> Dict[str, Optional[str]]:
    """Read the lesion of every ground-truth image from the metadata table.

    Images are matched on their id without the ``_downsampled`` suffix, so that either table
    may carry it. The metadata must have exactly one row per ground-truth image.

    Args:
        path (str): ``ISIC_2019_Training_Metadata.csv``.
        ground_truth (CsvTable): The ground-truth table, named in errors.
        rows (Sequence[tuple[int, str, int]]): Its rows, from :func:`read_isic2019_ground_truth`.

    Returns:
        dict[str, str | None]: Ground-truth image id -> ``lesion_id``, None where it is blank.

    Raises:
        FileNotFoundError: The file is missing.
        ValueError: No ``image`` or ``lesion_id`` column, a repeated image, an image that is
            not in the ground truth, or a ground-truth image without a row.
    """
    table = read_csv_table(path, ('image', 'lesion_id'), 'ISIC 2019 metadata table', _LAYOUT)
    id_col, lesion_col = table.column('image'), table.column('lesion_id')
    by_image = {_canonical(image_id): image_id for _, image_id, _ in rows}
    lesions: Dict[str, Optional[str]] = {}
    first_line: Dict[str, int] = {}
    for line, row in table.rows():
        key = _canonical(row[id_col])
        if key in first_line:
            table.reject(line, f'repeats the image "{row[id_col]}" of line {first_line[key]}; '
                               'expected each image once')
            continue
        first_line[key] = line
        if key not in by_image:
            table.reject(line, f'image "{row[id_col]}" is not in {ground_truth.what} '
                               f'"{ground_truth.path}"; expected the same images')
            continue
        lesions[by_image[key]] = row[lesion_col] or None
    for line, image_id, _ in rows:
        if image_id not in lesions:
            ground_truth.reject(line, f'image "{image_id}" has no row in {table.what} '
                                      f'"{table.path}"; expected the same images')
    ground_truth.settle()
    return lesions


@DATASETS.register_module()
class ISIC2019Dataset(BaseClsDataset):
    """ISIC 2019 skin lesion classification, read from the official challenge layout.

    The data are published at https://challenge.isic-archive.com/data/#2019 (25,331 training
    images; the ground truth and the metadata are the challenge's "Training Ground Truth" and
    "Training Metadata"). Under ``data_root``:

    .. code-block:: none

        ISIC_2019_Training_GroundTruth.csv   image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK
        ISIC_2019_Training_Input/<image>.jpg
        ISIC_2019_Training_Metadata.csv      image,age_approx,...,lesion_id,...

    The ground truth is one-hot, 0/1 or 0.0/1.0, exactly one 1 per row; the classes are its
    nine columns, UNK included (no training image has it). Ids are used as written, a
    ``_downsampled`` suffix included, and name the image files. Every row needs its image, and
    every ``.jpg`` in the input folder its row.

    The split is grouped by lesion, as the study's is: the images of one ``lesion_id`` of the
    metadata stay in one split (an image with a blank ``lesion_id`` is a lesion of its own), and
    each sample carries its ``lesion_id``, which ``check_dataset``'s leakage check and the
    grouped bootstrap of :mod:`medtrans.analysis.bootstrap` read. The study divides the
    training set 80/10/10, seeded and stratified by diagnosis (see
    :class:`~medtrans.datasets.classification.BaseClsDataset` for the arguments, ``split='all'``
    and the split file); its metric is balanced recall.

    Args:
        data_root (str): Folder holding the official layout.
        lesion_groups (bool): Group the split by lesion, which requires the metadata table;
            False ignores the metadata and divides the images one by one (then images of one
            lesion may fall in both training and test: not the study's protocol). The split
            file records the choice, so a split made otherwise is refused. Defaults to True.
        **kwargs: Arguments of :class:`~medtrans.datasets.classification.BaseClsDataset`.

    Raises:
        FileNotFoundError: Missing ``data_root``, table, input folder or image; the metadata
            table is missing (the message says where it is published, and how to opt out).
        ValueError: ``lesion_groups`` other than True or False; a malformed table: a cell other
            than 0/1, a row with zero or several positives, a repeated or malformed id, an
            image without a row, metadata for other images; each names the file and line.
    """

    METAINFO = dict(classes=ISIC2019_CLASSES)
    MULTI_LABEL = False
    SPLIT_FRACTIONS = dict(train=0.8, val=0.1, test=0.1)
    SPLIT_RECORD = 'isic2019'
    LAYOUT = _LAYOUT

    def __init__(self, data_root: str, lesion_groups: bool = True, **kwargs) -> None:
        if not isinstance(lesion_groups, bool):
            raise ValueError(f'ISIC2019Dataset: lesion_groups must be True (group the split by '
                             f'the lesion_id of {_METADATA}) or False (split by image), got '
                             f'{lesion_groups!r}.')
        self.lesion_groups = lesion_groups
        super().__init__(data_root=data_root, **kwargs)

    def load_samples(self) -> List[dict]:
        """Read the ground truth (and the metadata) and pair each row with its image.

        Returns:
            list[dict]: ``img_path``, ``sample_id`` (the image id), ``gt_label`` (index into
            :data:`ISIC2019_CLASSES`) and, when grouped by lesion, ``lesion_id``.
        """
        table, rows = read_isic2019_ground_truth(osp.join(self.data_root, _GROUND_TRUTH))
        paths = image_paths(table, [(line, image_id) for line, image_id, _ in rows],
                            osp.join(self.data_root, _IMAGES), '.jpg')
        samples = [dict(img_path=path, sample_id=image_id, gt_label=label)
                   for path, (_, image_id, label) in zip(paths, rows) if path is not None]
        if self.lesion_groups:
            metadata = osp.join(self.data_root, _METADATA)
            if not osp.lexists(metadata):
                raise FileNotFoundError(
                    f'ISIC 2019 metadata table "{metadata}" not found. The study splits ISIC '
                    '2019 by lesion, so that no lesion has images in two splits, and this '
                    f'table names each image\'s lesion (lesion_id): download {_METADATA} '
                    f'("Training Metadata") from the ISIC 2019 challenge site, {_SOURCE}, into '
                    f'"{self.data_root}". To split by image instead (not the study\'s protocol), '
                    'set lesion_groups=False on the dataset. Expected the layout:\n' + _LAYOUT)
            lesions = read_isic2019_lesions(metadata, table, rows)
            # Within collect_problems, an image without metadata is left out with its problem.
            samples = [dict(sample, lesion_id=lesions[sample['sample_id']] or sample['sample_id'])
                       for sample in samples if sample['sample_id'] in lesions]
        return samples
