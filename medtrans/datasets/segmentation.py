"""What the binary segmentation datasets share: a published layout read as it is, whose
training set is divided into train/val by a seeded split, recorded in the run's work dir."""
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmseg.datasets import BaseSegDataset

from .preresize import use_preresized
from .samplers import SeededSamplesMixin
from .splits import SplitRecordMixin, check_split_file_path, load_or_create_split, split_ids

__all__ = ['SplitSegDataset']

#: The splits that divide the training set, and so use the split record.
DIVIDED = ('train', 'val')


class SplitSegDataset(SeededSamplesMixin, SplitRecordMixin, BaseSegDataset):
    """Base of the binary segmentation datasets read from their published layouts.

    mmseg's ``BaseSegDataset`` pairs images and masks of one folder pair by suffix and says
    nothing of what is missing; a subclass instead lists its samples from the layout itself
    (:meth:`samples`), erring on anything unpaired, and this class validates the arguments and
    selects ``train`` / ``val`` from the training set by a seeded deterministic split
    (:func:`~medtrans.datasets.splits.split_ids`, grouped by each sample's ``group`` when it
    has one), read from ``split_file`` when one is given. :meth:`divided_split` hands the
    division to :class:`~medtrans.engine.hooks.SplitRecordHook`, which records it in the
    run's work dir.

    Subclasses set :attr:`SPLITS`, :attr:`LAYOUT` (shown in errors), :attr:`SOURCE` (where the
    data is published), :attr:`SPLIT_RECORD` (the record's name) and implement
    :meth:`folders` and :meth:`samples`.

    Args:
        data_root (str): Folder holding the published layout.
        split (str): One of :attr:`SPLITS`. Defaults to ``'train'``.
        val_fraction (float): Fraction of the training set in ``val``, in (0, 1).
            Defaults to 0.1.
        split_seed (int): Seed of the train/val split. Defaults to 0.
        split_file (str, optional): JSON record of the train/val split, used by ``train`` and
            ``val`` only (the other splits neither read nor write it). If it exists it is read
            and checked against the data and these arguments; otherwise it is written there.
            For every split, it must not lie inside ``data_root``. None computes the split
            (which :class:`~medtrans.engine.hooks.SplitRecordHook` then records in the run's
            work dir). Defaults to None.
        pipeline (Sequence[dict | Callable]): Transforms. Defaults to ().
        test_mode (bool): As in :class:`mmengine.dataset.BaseDataset`. Defaults to False.
        metainfo (dict, optional): Overrides of ``METAINFO``. Defaults to None.
        indices (int | Sequence[int], optional): Keep only these samples (or the first n).
            Defaults to None.
        serialize_data (bool): Share the sample list between workers. Defaults to True.
        lazy_init (bool): Defer reading the folders until first use. Defaults to False.
        max_refetch (int): As in :class:`mmengine.dataset.BaseDataset`. Defaults to 1000.
        ignore_index (int): Label ignored by losses and metrics. Defaults to 255.
        preresized (bool | str): Read images from pre-resized copies where a cache has
            current ones (:mod:`medtrans.datasets.preresize`): with their copied masks in
            training, with the original masks and ``source_shape`` in ``test_mode`` (scored
            at the original size). True looks for ``<data_root>/.preresized``, a str names
            another cache folder, False reads the originals. Defaults to True.
    """

    #: The split names; ``train`` and ``val`` divide the training set.
    SPLITS: Tuple[str, ...] = ()
    #: The layout under ``data_root``, as shown in error messages.
    LAYOUT = ''
    #: Where the data is published, as shown when ``data_root`` is missing.
    SOURCE = ''
    #: Takes ``preresized`` (:func:`~medtrans.datasets.preresize.reads_preresized`).
    READS_PRERESIZED = True

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
                 ignore_index: int = 255,
                 preresized: Union[bool, str] = True) -> None:
        name = type(self).__name__
        if split not in self.SPLITS:
            raise ValueError(f'{name}: split must be one of {list(self.SPLITS)}, got '
                             f'{split!r}.')
        if not 0 < val_fraction < 1:
            raise ValueError(f'{name}: val_fraction must lie strictly between 0 and 1, got '
                             f'{val_fraction!r}.')
        if data_root is None:
            raise ValueError(f'{name}: data_root is required (the folder holding the '
                             f'published layout):\n{self.LAYOUT}')
        if split_file is not None:
            # Checked before touching the disk, so that a misplaced split file fails fast.
            check_split_file_path(split_file, data_root)
        self.split = split
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.split_file = split_file
        self.preresized = preresized
        img_folder, mask_folder = self.folders(split)
        super().__init__(
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

    def folders(self, split: str) -> Tuple[str, str]:
        """(image folder, mask folder) of a split, relative to ``data_root``."""
        raise NotImplementedError

    def samples(self, img_dir: str, mask_dir: str) -> List[dict]:
        """Every sample of the split's folders, sorted: dicts with ``id``, ``img_path``,
        ``seg_map_path`` and optionally ``group`` (e.g. the patient) and other data-info keys.

        Raises:
            FileNotFoundError, ValueError: Unpaired or misnamed files, naming them.
        """
        raise NotImplementedError

    def _select(self, samples: List[dict]) -> List[str]:
        """The ids of ``self.split`` (``train`` or ``val``) among the training samples."""
        ids = [sample['id'] for sample in samples]
        groups = [sample['group'] for sample in samples] if 'group' in samples[0] else None
        fractions = {'train': 1 - self.val_fraction, 'val': self.val_fraction}
        meta = dict(
            dataset=type(self).__name__, val_fraction=self.val_fraction,
            split_seed=self.split_seed)
        splits = load_or_create_split(
            self.split_file,
            self.data_root,
            ids,
            make_split_fn=lambda _: split_ids(ids, fractions, self.split_seed, groups=groups),
            meta=meta)
        self._divided_split = (meta, splits)
        selected = splits[self.split]
        if not selected:
            raise ValueError(
                f'{type(self).__name__}: split "{self.split}" is empty: {len(ids)} training '
                f'images with val_fraction={self.val_fraction} leave none for it'
                + (f' (split_file "{self.split_file}")' if self.split_file else '') + '.')
        return selected

    def load_data_list(self) -> List[dict]:
        """List the split's folders (:meth:`samples`) and select the split's samples.

        Returns:
            list[dict]: One dict per sample with ``img_path``, ``seg_map_path``, ``label_map``,
            ``reduce_zero_label``, ``seg_fields`` and the sample's other keys (``group``
            excepted), sorted as :meth:`samples` sorts them.
        """
        if not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f'{type(self).__name__}: data_root "{self.data_root}" not found. Expected the '
                f'published layout:\n{self.LAYOUT}\n{self.SOURCE}')
        samples = self.samples(self.data_prefix['img_path'], self.data_prefix['seg_map_path'])
        if self.split in DIVIDED:
            keep = set(self._select(samples))
            samples = [sample for sample in samples if sample['id'] in keep]
        data_list = []
        for sample in samples:
            info: Dict[str, object] = {k: v for k, v in sample.items()
                                       if k not in ('id', 'group')}
            info.update(label_map=self.label_map, reduce_zero_label=False, seg_fields=[])
            data_list.append(info)
        # Tests score at the original size: their masks are not copies.
        keys = ('img_path', ) if self.test_mode else ('img_path', 'seg_map_path')
        return use_preresized(data_list, self.data_root, self.preresized, type(self).__name__,
                              keys=keys, source_shape=self.test_mode, pipeline=self.pipeline)
