"""A classification dataset for a user's own images: a folder per class, or a CSV table."""
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from medtrans.registry import DATASETS
from medtrans.utils.upstream import dataset_metainfo

from .classification import BaseClsDataset
from .utils import find_missing, read_csv_table

__all__ = ['CustomClsDataset']

_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
# Multi-label cells: positive, negative, or unknown (ignored by losses and metrics).
_SCORES = {'1': 1.0, '0': 0.0, '-1': -1.0, '1.0': 1.0, '0.0': 0.0, '-1.0': -1.0}

_LAYOUT = """\
  a folder per class (ann_file=None):      or a CSV table (ann_file='labels.csv'):
    <data_root>/<img_dir>/                   <data_root>/labels.csv
      <class a>/*.png (any depth)              path,label[,patient_id][,split]
      <class b>/*.png                          <data_root>/<img_dir>/<path>
  multi-label CSV: path,<class a>,<class b>,... with cells 1, 0 or -1 (unknown)"""


def _numeric_sort_key(value: str) -> Tuple[int, object]:
    """Integers in numeric order, before any other names (which sort as text)."""
    try:
        return 0, int(value)
    except ValueError:
        return 1, value


@DATASETS.register_module()
class CustomClsDataset(BaseClsDataset):
    """Images of a user's own task, single- or multi-label, without writing code.

    Two layouts, as mmpretrain's ``CustomDataset`` has:

    * **a folder per class** (``ann_file=None``): ``<data_root>/<img_dir>/<class>/...`` holds
      the images of each class, at any depth. The classes are the sub-folders, sorted, or
      ``classes`` (then the sub-folders must be exactly those). Hidden files (``.name``) are
      skipped; any other file without an image extension, and an image outside a class folder,
      is an error. Single-label only. ``sample_id`` is the path under ``img_dir``.
    * **a CSV table** (``ann_file``, relative to ``data_root``): a header and one row per
      image. ``path_column`` holds the image path, relative to ``<data_root>/<img_dir>`` (or
      absolute); it is the ``sample_id``. Single-label: ``label_column`` holds a class name;
      the classes are ``classes`` (other names are errors) or else every distinct name, sorted
      (numerically when all are integers). Multi-label (``multi_label=True``): one column per
      class, named as the class, with 1 (positive), 0 (negative) or -1 (unknown: ignored by
      the masked losses and the metrics); the classes are ``classes`` or else every column
      but the path, group and split columns.

    A ``group_column`` (e.g. patient id; never blank) keeps each group in one split. Splits
    are seeded divisions of all images by ``split_fractions`` (default 80/10/10; stratified by
    label when single-label; ``split='all'`` takes every image), or, with a ``split_column``,
    the rows whose cell there equals ``split`` (e.g. ``train``/``val``/``test`` as the user
    made them). Every image named must exist; nothing is skipped.

    Args:
        data_root (str): The dataset folder.
        ann_file (str, optional): The CSV table, relative to ``data_root`` or absolute. None
            reads a folder per class. Defaults to None.
        img_dir (str): Folder of the images (or class folders), relative to ``data_root``.
            Defaults to '' (``data_root`` itself).
        classes (Sequence[str], optional): The class names, in index order. Defaults to None
            (found in the data, as above; the log lists them).
        multi_label (bool): Whether the table has a 1/0/-1 column per class. Defaults to False.
        path_column (str): Column of the image paths. Defaults to ``'path'``.
        label_column (str): Column of the class names (single-label). Defaults to ``'label'``.
        group_column (str, optional): Column of the group (patient) ids. Defaults to None.
        split_column (str, optional): Column naming each row's split; the splits are then the
            user's, not divided. Defaults to None.
        extensions (Sequence[str]): Image file extensions of the class folders (compared
            case-insensitively). Defaults to ('.jpg', '.jpeg', '.png', '.bmp', '.tif',
            '.tiff', '.webp').
        **kwargs: Arguments of :class:`~medtrans.datasets.classification.BaseClsDataset`
            (``split``, ``split_seed``, ``split_file``, ``split_fractions``, ``pipeline``...).

    Raises:
        FileNotFoundError: A missing ``data_root``, table, class folder or image.
        ValueError: Unknown class names, bad multi-label cells, blank group or split cells,
            repeated paths, stray files; each names the file (and line).
    """

    METAINFO: dict = dict()
    LAYOUT = _LAYOUT
    SPLIT_RECORD = 'custom_cls'

    def __init__(self,
                 data_root: str,
                 ann_file: Optional[str] = None,
                 img_dir: str = '',
                 classes: Optional[Sequence[str]] = None,
                 multi_label: bool = False,
                 path_column: str = 'path',
                 label_column: str = 'label',
                 group_column: Optional[str] = None,
                 split_column: Optional[str] = None,
                 extensions: Sequence[str] = _EXTENSIONS,
                 **kwargs) -> None:
        if multi_label and ann_file is None:
            raise ValueError('CustomClsDataset: multi_label=True needs a CSV table (ann_file); '
                             'a folder per class gives one label per image.')
        if ann_file is None and (group_column or split_column):
            raise ValueError('CustomClsDataset: group_column and split_column are columns of a '
                             'CSV table (ann_file); a folder per class has none.')
        if classes is not None:
            if isinstance(classes, str) or len(set(classes)) != len(classes) or not classes:
                raise ValueError('CustomClsDataset: classes must be a sequence of distinct '
                                 f'names, got {classes!r}.')
            kwargs['metainfo'] = dict(kwargs.get('metainfo') or {}, classes=tuple(classes))
        self.MULTI_LABEL = multi_label
        self.img_dir = img_dir
        self.path_column = path_column
        self.label_column = label_column
        self.group_column = group_column
        self.split_column = split_column
        self.extensions = tuple(ext.lower() for ext in extensions)
        if split_column is not None:
            if kwargs.get('split_fractions'):
                raise ValueError('CustomClsDataset: split_column gives the splits; '
                                 'split_fractions cannot divide them too.')
            kwargs['split_fractions'] = {}
        super().__init__(data_root=data_root, ann_file=ann_file or '', **kwargs)

    @property
    def _image_root(self) -> str:
        return osp.join(self.data_root, self.img_dir)

    def _folder_samples(self) -> List[dict]:
        root = self._image_root
        if not osp.isdir(root):
            raise FileNotFoundError(f'CustomClsDataset: image folder "{root}" not found; '
                                    f'expected a folder per class:\n{self.LAYOUT}')
        folders, strays = [], []
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.name.startswith('.'):
                    continue  # hidden, e.g. the pre-resized cache (.preresized)
                if entry.is_dir():
                    folders.append(entry.name)
                elif entry.name.lower().endswith(self.extensions):
                    strays.append(entry.name)
        if strays:
            raise ValueError(f'CustomClsDataset: image "{osp.join(root, sorted(strays)[0])}" is '
                             f'not in a class folder; expected <class>/<image> under "{root}".')
        classes = dataset_metainfo(self).get('classes')
        if classes is None:
            classes = dataset_metainfo(self)['classes'] = tuple(sorted(folders))
        elif set(folders) != set(classes):
            raise ValueError(f'CustomClsDataset: "{root}" has the class folders '
                             f'{sorted(folders)}; expected one per class of {list(classes)}.')
        samples = []
        for label, name in enumerate(classes):
            for folder, subfolders, files in os.walk(osp.join(root, name), followlinks=True):
                subfolders.sort()
                for file in sorted(files):
                    if file.startswith('.'):
                        continue
                    path = osp.join(folder, file)
                    if not file.lower().endswith(self.extensions):
                        raise ValueError(f'CustomClsDataset: "{path}" in a class folder is not '
                                         f'an image; expected the extensions {self.extensions}.')
                    sample_id = osp.relpath(path, root).replace(os.sep, '/')
                    samples.append(dict(img_path=path, sample_id=sample_id, gt_label=label))
        missing = find_missing([s['img_path'] for s in samples])
        if missing:
            raise FileNotFoundError(f'CustomClsDataset: "{samples[missing[0]]["img_path"]}" is '
                                    'not a readable file (a broken link?); expected an image.')
        return samples

    def _table_samples(self) -> List[dict]:
        reserved = [c for c in (self.path_column, self.group_column, self.split_column) if c]
        given = dataset_metainfo(self).get('classes')
        if self.MULTI_LABEL:
            required = reserved + list(given or [])
        else:
            required = reserved + [self.label_column]
        table = read_csv_table(self.ann_file, required, 'CustomClsDataset label table',
                               self.LAYOUT, other_columns=not (self.MULTI_LABEL and given))
        path_col = table.column(self.path_column)
        rows = list(table.rows())
        if self.MULTI_LABEL:
            classes = given or tuple(c for c in table.header if c not in reserved)
            class_cols = [table.column(name) for name in classes]
        else:
            label_col = table.column(self.label_column)
            # Blank cells are no class: the row check below names them.
            classes = given or tuple(sorted({row[label_col] for _, row in rows} - {''},
                                            key=_numeric_sort_key))
            index = {name: i for i, name in enumerate(classes)}
        if not classes:
            raise ValueError(f'{table.what} "{table.path}" names no class; expected '
                             + ('a column per class.' if self.MULTI_LABEL else 'class names in '
                                f'the {self.label_column} column.'))
        dataset_metainfo(self)['classes'] = tuple(classes)
        samples, first_line = [], {}
        for line, row in rows:
            sample_id = row[path_col]
            if not sample_id:
                table.reject(line, f'{self.path_column} is blank; expected an image path')
                continue
            if sample_id in first_line:
                table.reject(line, f'repeats the image "{sample_id}" of line '
                                   f'{first_line[sample_id]}; expected each image once')
                continue
            first_line[sample_id] = line
            sample = dict(img_path=osp.join(self._image_root, sample_id), sample_id=sample_id)
            if self.MULTI_LABEL:
                scores = [_SCORES.get(row[col]) for col in class_cols]
                if None in scores:
                    bad = scores.index(None)
                    table.reject(line, f'{classes[bad]} is {row[class_cols[bad]]!r}; expected '
                                       '1, 0 or -1 (unknown)')
                    continue
                sample['gt_score'] = np.array(scores, np.float32)
            elif row[label_col] not in index:
                table.reject(line, f'{self.label_column} is {row[label_col]!r}; expected one '
                                   f'of the classes {list(classes)}')
                continue
            else:
                sample['gt_label'] = index[row[label_col]]
            blank = [column for column in (self.group_column, self.split_column)
                     if column and not row[table.column(column)]]
            if blank:
                key = 'group' if blank[0] == self.group_column else 'split'
                table.reject(line, f'{blank[0]} is blank; expected a {key} name')
                continue
            for column, key in ((self.group_column, 'group'), (self.split_column, 'split')):
                if column:
                    sample[key] = row[table.column(column)]
            samples.append((line, sample))
        for i in find_missing([s['img_path'] for _, s in samples]):
            line, sample = samples[i]
            table.reject(line, f'image "{sample["img_path"]}" not found; expected every path '
                               f'relative to "{self._image_root}"', FileNotFoundError)
            samples[i] = (line, None)
        # The rows were read before they were checked: their problems are settled here.
        table.settle()
        return [sample for _, sample in samples if sample is not None]

    def load_samples(self) -> List[dict]:
        """Read the class folders or the table.

        Returns:
            list[dict]: ``img_path``, ``sample_id``, ``gt_label`` or ``gt_score``, and
            ``group`` (with a group column) and ``split`` (with a split column) per image.
        """
        return self._table_samples() if self.ann_file else self._folder_samples()

    def official_splits(self) -> Dict[str, List[dict]]:
        """The user's splits, by the split column's values (none without a split column).

        Returns:
            dict[str, list[dict]]: Split name -> samples.
        """
        if self.split_column is None:
            return {}
        splits: Dict[str, List[dict]] = defaultdict(list)
        for sample in self.load_samples():
            splits[sample['split']].append(sample)
        return dict(splits)
