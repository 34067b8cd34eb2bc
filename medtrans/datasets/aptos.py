"""APTOS 2019 Blindness Detection: diabetic retinopathy grade of fundus photographs."""
import os.path as osp
from typing import List

from medtrans.registry import DATASETS

from .classification import BaseClsDataset
from .utils import image_paths, read_csv_table

__all__ = ['APTOS2019Dataset']

# The grades as the label table writes them.
_GRADES = {str(grade): grade for grade in range(5)}


@DATASETS.register_module()
class APTOS2019Dataset(BaseClsDataset):
    """APTOS 2019 diabetic retinopathy grading, read from the Kaggle competition layout.

    The data are published at https://www.kaggle.com/c/aptos2019-blindness-detection (3,662
    labelled images). Under ``data_root``:

    .. code-block:: none

        train.csv                  id_code,diagnosis   (diagnosis: grade 0..4)
        train_images/<id_code>.png

    Every row needs its image and every ``.png`` in ``train_images`` its row. The test images
    of the competition have no public labels and are not read. The study divides the labelled
    set 70/15/15 (``train``/``val``/``test``), seeded and stratified by grade (see
    :class:`~medtrans.datasets.classification.BaseClsDataset` for the arguments, ``split='all'``
    and the split file); its metric is the quadratic Cohen kappa.

    Raises:
        FileNotFoundError: Missing ``data_root``, ``train.csv``, ``train_images`` or an image.
        ValueError: A malformed table: a grade other than 0..4, a repeated or malformed id, a
            row with another number of cells, an image without a row; each names the file and
            line, and every bad row is named (in one error).
    """

    METAINFO = dict(classes=('No DR', 'Mild', 'Moderate', 'Severe', 'Proliferative DR'))
    MULTI_LABEL = False
    SPLIT_FRACTIONS = dict(train=0.7, val=0.15, test=0.15)
    SPLIT_RECORD = 'aptos2019'
    LAYOUT = """\
  <data_root>/
    train.csv                    id_code,diagnosis (grade 0..4)
    train_images/<id_code>.png"""

    def load_samples(self) -> List[dict]:
        """Read ``train.csv`` and pair each row with its image.

        Returns:
            list[dict]: ``img_path``, ``sample_id`` (the ``id_code``) and ``gt_label`` (the
            grade) of every row.
        """
        table = read_csv_table(osp.join(self.data_root, 'train.csv'), ('id_code', 'diagnosis'),
                               'APTOS 2019 label table', self.LAYOUT, other_columns=False)
        id_col, grade_col = table.column('id_code'), table.column('diagnosis')
        rows, grades = [], []
        for line, row in table.rows():
            grade = _GRADES.get(row[grade_col])
            if grade is None:
                table.reject(line, f'diagnosis is {row[grade_col]!r}; expected a grade 0, 1, 2, '
                                   '3 or 4', sample_id=row[id_col])
                continue
            rows.append((line, row[id_col]))
            grades.append(grade)
        paths = image_paths(table, rows, osp.join(self.data_root, 'train_images'), '.png')
        return [dict(img_path=path, sample_id=sample_id, gt_label=grade)
                for path, (_, sample_id), grade in zip(paths, rows, grades) if path is not None]
