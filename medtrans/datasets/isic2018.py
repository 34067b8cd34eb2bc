"""ISIC 2018 Task 1: skin lesion boundary segmentation."""
import os
import os.path as osp
from typing import List, Tuple

from medtrans.registry import DATASETS

from .segmentation import SplitSegDataset
from .utils import settle_problems

__all__ = ['ISIC2018Task1Dataset']

_IMG_SUFFIX = '.jpg'
_MASK_SUFFIX = '_segmentation.png'

# split -> (input folder, ground-truth folder), as published.
_FOLDERS = {
    'train': ('ISIC2018_Task1-2_Training_Input', 'ISIC2018_Task1_Training_GroundTruth'),
    'val': ('ISIC2018_Task1-2_Training_Input', 'ISIC2018_Task1_Training_GroundTruth'),
    'trainval': ('ISIC2018_Task1-2_Training_Input', 'ISIC2018_Task1_Training_GroundTruth'),
    'official_val': ('ISIC2018_Task1-2_Validation_Input', 'ISIC2018_Task1_Validation_GroundTruth'),
    'official_test': ('ISIC2018_Task1-2_Test_Input', 'ISIC2018_Task1_Test_GroundTruth'),
}


def _list_files(folder: str, suffix: str) -> List[str]:
    """Sorted names of the regular files in ``folder`` that end with ``suffix``."""
    return sorted(entry.name for entry in os.scandir(folder)
                  if entry.is_file() and entry.name.endswith(suffix))


@DATASETS.register_module()
class ISIC2018Task1Dataset(SplitSegDataset):
    """ISIC 2018 Task 1 lesion segmentation, read from the official release layout.

    The dataset is published at https://challenge.isic-archive.com/data/#2018. Under
    ``data_root``:

    .. code-block:: none

        ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg ...
        ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png ...
        ISIC2018_Task1-2_Validation_Input/   ISIC2018_Task1_Validation_GroundTruth/
        ISIC2018_Task1-2_Test_Input/         ISIC2018_Task1_Test_GroundTruth/

    Every ``*.jpg`` in an input folder is a sample and must have its ``<id>_segmentation.png``
    mask; every ``*_segmentation.png`` must have its image. Files that are not ``.jpg`` in the
    input folders (the release's ``LICENSE.txt``, ``ATTRIBUTION.txt``) and not ``.png`` in the
    ground-truth folders are ignored; a ``.png`` there not named ``<id>_segmentation.png`` is
    an error. Masks hold {0, 255}; load them with ``LoadBinaryMask``, which maps them to
    {0, 1} (background, lesion).

    Splits: ``train`` and ``val`` divide the official training set by a seeded deterministic
    split (:func:`~medtrans.datasets.splits.split_ids` on the sorted ids), ``val_fraction`` of it
    to ``val``; ``trainval`` is the whole official training set; ``official_val`` and
    ``official_test`` read the Validation and Test folders.

    Args:
        data_root (str): Folder holding the official layout.
        split (str): One of ``'train'``, ``'val'``, ``'trainval'``, ``'official_val'``,
            ``'official_test'``. Defaults to ``'train'``.
        val_fraction, split_seed, split_file, pipeline, test_mode, metainfo, indices,
        serialize_data, lazy_init, max_refetch, ignore_index: As for
            :class:`~medtrans.datasets.segmentation.SplitSegDataset`.

    Raises:
        FileNotFoundError: Missing ``data_root`` or split folder, an image without its mask or a
            mask without its image (:class:`~medtrans.datasets.utils.MissingFiles` for several).
        ValueError: Bad arguments, a misnamed mask, an empty split, or a split file that does
            not fit (:class:`~medtrans.datasets.utils.DataProblems` for several problems of
            which not all are missing files).
    """

    #: ``mask_file_name``: the challenge's mask name for an image ``<stem>.jpg`` (its ground
    #: truth's, and what ``tools/test.py --out-dir`` writes predictions as).
    METAINFO = dict(classes=('background', 'lesion'), palette=[[0, 0, 0], [255, 0, 0]],
                    mask_file_name='{stem}_segmentation.png')

    SPLITS = tuple(_FOLDERS)
    SPLIT_RECORD = 'isic2018_task1'
    LAYOUT = """\
  <data_root>/
    ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg ...
    ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png ...
    ISIC2018_Task1-2_Validation_Input/*.jpg
    ISIC2018_Task1_Validation_GroundTruth/*_segmentation.png
    ISIC2018_Task1-2_Test_Input/*.jpg
    ISIC2018_Task1_Test_GroundTruth/*_segmentation.png"""
    SOURCE = ('The dataset is published at https://challenge.isic-archive.com/data/#2018 (for a '
              'quick try, tools/misc/make_demo_data.py writes a synthetic set in this layout).')

    def folders(self, split: str) -> Tuple[str, str]:
        return _FOLDERS[split]

    def samples(self, img_dir: str, mask_dir: str) -> List[dict]:
        """Every image of the split's folders with its mask, sorted by id.

        Every unpaired or misnamed file is a problem, all refused together
        (:func:`~medtrans.datasets.utils.settle_problems`; within ``collect_problems`` they are
        reported and left out).
        """
        for folder, what in ((img_dir, 'images (*.jpg)'), (mask_dir, 'masks (*_segmentation.png)')):
            if not osp.isdir(folder):
                raise FileNotFoundError(
                    f'ISIC2018Task1Dataset (split "{self.split}"): folder "{folder}" not found; '
                    f'expected it to hold the {what} of this split, as in:\n{self.LAYOUT}')
        img_ids = [name[:-len(_IMG_SUFFIX)] for name in _list_files(img_dir, _IMG_SUFFIX)]
        mask_names = _list_files(mask_dir, '.png')
        problems: List[Exception] = [
            ValueError(f'ISIC2018Task1Dataset: "{osp.join(mask_dir, name)}" is not named '
                       f'<id>{_MASK_SUFFIX}; expected only masks in {mask_dir}')
            for name in mask_names if not name.endswith(_MASK_SUFFIX)]
        mask_ids = {name[:-len(_MASK_SUFFIX)] for name in mask_names
                    if name.endswith(_MASK_SUFFIX)}
        problems += [FileNotFoundError(
            f'ISIC2018Task1Dataset: image "{osp.join(img_dir, i + _IMG_SUFFIX)}" has no mask; '
            f'expected "{osp.join(mask_dir, i + _MASK_SUFFIX)}"')
            for i in img_ids if i not in mask_ids]
        problems += [FileNotFoundError(
            f'ISIC2018Task1Dataset: mask "{osp.join(mask_dir, i + _MASK_SUFFIX)}" has no image; '
            f'expected "{osp.join(img_dir, i + _IMG_SUFFIX)}"')
            for i in sorted(mask_ids.difference(img_ids))]
        settle_problems(problems, f'the ISIC 2018 folders "{img_dir}" and "{mask_dir}"')
        if not img_ids:
            raise ValueError(
                f'ISIC2018Task1Dataset (split "{self.split}"): no images (*{_IMG_SUFFIX}) in '
                f'"{img_dir}"; expected the images of this split.')
        samples = [dict(id=i, img_path=osp.join(img_dir, i + _IMG_SUFFIX),
                        seg_map_path=osp.join(mask_dir, i + _MASK_SUFFIX))
                   for i in img_ids if i in mask_ids]
        if not samples:  # all unpaired: the problems were collected (check_dataset)
            raise ValueError(f'ISIC2018Task1Dataset (split "{self.split}"): no image of '
                             f'"{img_dir}" has its mask in "{mask_dir}".')
        return samples
