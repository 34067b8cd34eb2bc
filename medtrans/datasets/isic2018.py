"""ISIC 2018 Task 1: skin lesion boundary segmentation."""
import os
import os.path as osp
from typing import Callable, List, Optional, Sequence, Tuple, Union

from mmseg.datasets import BaseSegDataset

from medtrans.registry import DATASETS

from .splits import check_split_file_path, load_or_create_split, split_ids

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
# The splits that divide the official training set, and so use the split record.
_DIVIDED = ('train', 'val')

_LAYOUT = """\
  <data_root>/
    ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg ...
    ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png ...
    ISIC2018_Task1-2_Validation_Input/*.jpg
    ISIC2018_Task1_Validation_GroundTruth/*_segmentation.png
    ISIC2018_Task1-2_Test_Input/*.jpg
    ISIC2018_Task1_Test_GroundTruth/*_segmentation.png"""


def _list_files(folder: str, suffix: str) -> List[str]:
    """Sorted names of the regular files in ``folder`` that end with ``suffix``."""
    return sorted(entry.name for entry in os.scandir(folder)
                  if entry.is_file() and entry.name.endswith(suffix))


def _examples(items: Sequence[str], limit: int = 5) -> str:
    shown = ', '.join(items[:limit])
    return shown + (f', ... ({len(items)} in all)' if len(items) > limit else '')


@DATASETS.register_module()
class ISIC2018Task1Dataset(BaseSegDataset):
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
        val_fraction (float): Fraction of the official training set in ``val``, in (0, 1).
            Defaults to 0.1.
        split_seed (int): Seed of the train/val split. Defaults to 0.
        split_file (str, optional): JSON record of the train/val split, used by ``train`` and
            ``val`` only (``trainval`` and the official sets are not divided, and neither read
            nor write it). If it exists it is read and checked against the data and these
            arguments; otherwise it is written there. For every split, it must not lie inside
            ``data_root``, and ``'{work_dir}'`` in it must have been filled in (tools/train.py
            does so). None computes the split without saving it. Defaults to None.
        pipeline (Sequence[dict | Callable]): Transforms. Defaults to ().
        test_mode (bool): As in :class:`mmengine.dataset.BaseDataset`. Defaults to False.
        metainfo (dict, optional): Overrides of :attr:`METAINFO`. Defaults to None.
        indices (int | Sequence[int], optional): Keep only these samples (or the first n).
            Defaults to None.
        serialize_data (bool): Share the sample list between workers. Defaults to True.
        lazy_init (bool): Defer reading the folders until first use. Defaults to False.
        max_refetch (int): As in :class:`mmengine.dataset.BaseDataset`. Defaults to 1000.
        ignore_index (int): Label ignored by losses and metrics. Defaults to 255.

    Raises:
        FileNotFoundError: Missing ``data_root`` or split folder, an image without its mask or a
            mask without its image.
        ValueError: Bad arguments, an empty split, or a split file that does not fit.
    """

    #: ``mask_file_name``: the challenge's mask name for an image ``<stem>.jpg`` (its ground
    #: truth's, and what ``tools/test.py --out-dir`` writes predictions as).
    METAINFO = dict(classes=('background', 'lesion'), palette=[[0, 0, 0], [255, 0, 0]],
                    mask_file_name='{stem}_segmentation.png')
    #: Its tiny layout for the fuzz tests (see :mod:`medtrans.datasets.synthetic`).
    SYNTHETIC_LAYOUT = 'medtrans.datasets.synthetic.isic2018:isic2018_task1_layout'

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 val_fraction: float = 0.1,
                 split_seed: int = 0,
                 split_file: Optional[str] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: bool = False,
                 metainfo: Optional[dict] = None,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 serialize_data: bool = True,
                 lazy_init: bool = False,
                 max_refetch: int = 1000,
                 ignore_index: int = 255) -> None:
        if split not in _FOLDERS:
            raise ValueError(f'ISIC2018Task1Dataset: split must be one of {list(_FOLDERS)}, '
                             f'got {split!r}.')
        if not 0 < val_fraction < 1:
            raise ValueError('ISIC2018Task1Dataset: val_fraction must lie strictly between 0 '
                             f'and 1, got {val_fraction!r}.')
        if data_root is None:
            raise ValueError('ISIC2018Task1Dataset: data_root is required (the folder holding '
                             f'the official layout):\n{_LAYOUT}')
        if split_file is not None:
            # Checked before touching the disk, so that a misplaced split file fails fast.
            check_split_file_path(split_file, data_root)
        self.split = split
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.split_file = split_file
        img_folder, mask_folder = _FOLDERS[split]
        super().__init__(
            img_suffix=_IMG_SUFFIX,
            seg_map_suffix=_MASK_SUFFIX,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=dict(img_path=img_folder, seg_map_path=mask_folder),
            indices=indices,
            serialize_data=serialize_data,
            pipeline=list(pipeline),
            test_mode=test_mode,
            lazy_init=lazy_init,
            max_refetch=max_refetch,
            ignore_index=ignore_index,
            reduce_zero_label=False)

    def _pairs(self, img_dir: str, mask_dir: str) -> List[Tuple[str, str, str]]:
        """(id, image path, mask path) of every sample of one split's folders, sorted by id."""
        for folder, what in ((img_dir, 'images (*.jpg)'), (mask_dir, 'masks (*_segmentation.png)')):
            if not osp.isdir(folder):
                raise FileNotFoundError(
                    f'ISIC2018Task1Dataset (split "{self.split}"): folder "{folder}" not found; '
                    f'expected it to hold the {what} of this split, as in:\n{_LAYOUT}')
        img_ids = [name[:-len(_IMG_SUFFIX)] for name in _list_files(img_dir, _IMG_SUFFIX)]
        mask_names = _list_files(mask_dir, '.png')
        misnamed = [name for name in mask_names if not name.endswith(_MASK_SUFFIX)]
        if misnamed:
            raise ValueError(
                f'ISIC2018Task1Dataset: "{osp.join(mask_dir, misnamed[0])}" is not named '
                f'<id>{_MASK_SUFFIX}; expected only masks in {mask_dir} '
                f'(unexpected: {_examples(misnamed)}).')
        mask_ids = {name[:-len(_MASK_SUFFIX)] for name in mask_names}

        no_mask = [i for i in img_ids if i not in mask_ids]
        if no_mask:
            raise FileNotFoundError(
                f'ISIC2018Task1Dataset: image "{osp.join(img_dir, no_mask[0] + _IMG_SUFFIX)}" '
                f'has no mask; expected "{osp.join(mask_dir, no_mask[0] + _MASK_SUFFIX)}" '
                f'(images without masks: {_examples(no_mask)}).')
        no_image = sorted(mask_ids.difference(img_ids))
        if no_image:
            raise FileNotFoundError(
                f'ISIC2018Task1Dataset: mask "{osp.join(mask_dir, no_image[0] + _MASK_SUFFIX)}" '
                f'has no image; expected "{osp.join(img_dir, no_image[0] + _IMG_SUFFIX)}" '
                f'(masks without images: {_examples(no_image)}).')
        if not img_ids:
            raise ValueError(
                f'ISIC2018Task1Dataset (split "{self.split}"): no images (*{_IMG_SUFFIX}) in '
                f'"{img_dir}"; expected the images of this split.')
        return [(i, osp.join(img_dir, i + _IMG_SUFFIX), osp.join(mask_dir, i + _MASK_SUFFIX))
                for i in img_ids]

    def _select(self, ids: List[str]) -> List[str]:
        """The ids of ``self.split`` (``train`` or ``val``) among the official training ids."""
        fractions = {'train': 1 - self.val_fraction, 'val': self.val_fraction}
        splits = load_or_create_split(
            self.split_file,
            self.data_root,
            ids,
            make_split_fn=lambda all_ids: split_ids(all_ids, fractions, self.split_seed),
            meta=dict(
                dataset=type(self).__name__,
                val_fraction=self.val_fraction,
                split_seed=self.split_seed))
        selected = splits[self.split]
        if not selected:
            raise ValueError(
                f'ISIC2018Task1Dataset: split "{self.split}" is empty: {len(ids)} training images '
                f'with val_fraction={self.val_fraction} leave none for it'
                + (f' (split_file "{self.split_file}")' if self.split_file else '') + '.')
        return selected

    def load_data_list(self) -> List[dict]:
        """Pair images with masks in the split's folders and select the split's samples.

        Returns:
            list[dict]: One dict per sample with ``img_path``, ``seg_map_path``, ``label_map``,
            ``reduce_zero_label`` and ``seg_fields``, sorted by id.
        """
        if not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f'ISIC2018Task1Dataset: data_root "{self.data_root}" not found. Expected the '
                f'official ISIC 2018 Task 1 layout:\n{_LAYOUT}\nThe dataset is published at '
                'https://challenge.isic-archive.com/data/#2018 (for a quick try, '
                'tools/misc/make_demo_data.py writes a synthetic set in this layout).')
        pairs = self._pairs(self.data_prefix['img_path'], self.data_prefix['seg_map_path'])
        if self.split in _DIVIDED:
            keep = set(self._select([sample_id for sample_id, _, _ in pairs]))
            pairs = [pair for pair in pairs if pair[0] in keep]
        return [
            dict(img_path=img_path, seg_map_path=mask_path, label_map=self.label_map,
                 reduce_zero_label=False, seg_fields=[])
            for _, img_path, mask_path in pairs
        ]
