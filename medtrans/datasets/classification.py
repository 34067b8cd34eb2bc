"""The shared base of the classification datasets.

Interface of a dataset family (subclass :class:`BaseClsDataset`, register it in
:data:`medtrans.registry.DATASETS`):

.. code-block:: python

    @DATASETS.register_module()
    class MyDataset(BaseClsDataset):
        METAINFO = dict(classes=('a', 'b'))
        MULTI_LABEL = False                                  # True: gt_score vectors
        SPLIT_FRACTIONS = dict(train=0.8, val=0.1, test=0.1)  # {}: no divided splits
        SPLIT_RECORD = 'mine'                                # record: mine_seed<seed>.json
        LAYOUT = '<data_root>/labels.csv ...'                # shown in layout errors

        def load_samples(self) -> List[dict]:
            ...  # the publisher's labelled set (the one the divided splits share)

        def official_splits(self) -> Mapping[str, List[dict]]:   # optional
            ...  # publisher-defined splits by name, e.g. {'official_test': [...]}; a lazy
                 # Mapping is fine: the base iterates its names and looks up one split

Its tiny synthetic layout for the fuzz tests goes in ``medtrans/testing/layouts/`` and
``MEDTRANS_LAYOUTS`` (a plugin's: the ``medtrans.synthetic_layouts`` entry points), not here.

``__init__(data_root, split='train', split_seed=0, split_file=None, pipeline=(),
test_mode=False, split_fractions=None, **kwargs)``; ``kwargs`` go to mmpretrain's
``BaseDataset`` (``metainfo``, ``indices``, ``serialize_data``, ``lazy_init``, ``ann_file``...).
A subclass sets its own attributes before calling ``super().__init__``, which loads the data.

A sample is a dict with:

* ``sample_id`` (str, unique in the set);
* where its pixels are: ``img_path`` for :class:`~medtrans.datasets.transforms.LoadImageStrict`,
  or another key that the family's loading transform reads;
* ``gt_label`` (int class index) when ``MULTI_LABEL`` is False, or ``gt_score``
  (``np.float32`` vector, one entry per class: 1 positive, 0 negative, -1 ignored) when True;
* optionally ``patient_id``, ``lesion_id`` or ``group``
  (:data:`~medtrans.datasets.splits.GROUP_KEYS`): then every sample must have one, the divided
  splits keep each group in one split, and ``check_dataset`` reports a group in two splits.

``split`` selects the samples:

* a name in ``SPLIT_FRACTIONS`` (or ``split_fractions``): ``load_samples()`` divided by
  :func:`~medtrans.datasets.splits.split_ids` (seeded; stratified by ``gt_label`` when
  single-label; grouped when samples carry group ids), read from ``split_file`` when one is
  given; :meth:`divided_split` hands the division to
  :class:`~medtrans.engine.hooks.SplitRecordHook`, which records it in the work dir;
* ``'all'`` (when there are divided splits): every sample of ``load_samples()``;
* any other name: ``official_splits()[split]``.

The samples are checked (ids, label types and ranges, group ids), sorted by ``sample_id``, and
the split's label counts are logged. The families read their label tables with the helpers of
:mod:`medtrans.datasets.utils`.
"""
import os.path as osp
from collections import Counter
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.logging import MMLogger
from mmpretrain.datasets import BaseDataset

from medtrans.registry import TRANSFORMS
from medtrans.utils.upstream import dataset_metainfo

from .preresize import use_preresized
from .samplers import SeededSamplesMixin
from .splits import (
    GROUP_KEYS,
    SplitRecordMixin,
    check_split_file_path,
    group_key,
    load_or_create_split,
    split_ids,
)

__all__ = ['BaseClsDataset', 'summarize_labels', 'ALL_SPLIT']

#: The split name that selects every sample of :meth:`BaseClsDataset.load_samples`.
ALL_SPLIT = 'all'


def summarize_labels(samples: Sequence[dict], classes: Sequence[str], multi_label: bool) -> str:
    """The label counts of samples, one class per line.

    Args:
        samples (Sequence[dict]): Samples with ``gt_label`` (single-label) or ``gt_score``.
        classes (Sequence[str]): Class names.
        multi_label (bool): Whether the samples have ``gt_score`` vectors.

    Returns:
        str: ``'  <index> <name>: <count>'`` lines, or ``positive / negative / ignored`` counts
        per class for multi-label samples.
    """
    if multi_label:
        scores = (np.stack([s['gt_score'] for s in samples]) if samples
                  else np.zeros((0, len(classes)), np.float32))
        return '\n'.join(
            f'  {i} {name}: {int((scores[:, i] == 1).sum())} positive / '
            f'{int((scores[:, i] == 0).sum())} negative / {int((scores[:, i] == -1).sum())} '
            'ignored' for i, name in enumerate(classes))
    counts = Counter(s['gt_label'] for s in samples)
    return '\n'.join(f'  {i} {name}: {counts.get(i, 0)}' for i, name in enumerate(classes))


def _group_of(sample: dict):
    key = group_key(sample)
    return None if key is None else sample[key]


def _format_fractions(fractions: Dict[str, float]) -> str:
    return '/'.join(f'{name} {frac:g}' for name, frac in fractions.items())


class BaseClsDataset(SeededSamplesMixin, SplitRecordMixin, BaseDataset):
    """Base of the classification datasets: official layouts, checked samples, seeded splits.

    Subclasses read their publisher's layout in :meth:`load_samples` (and
    :meth:`official_splits` where the publisher defines splits); this class selects the split,
    checks the samples and logs the split's labels. See the module docstring for the interface.

    Args:
        data_root (str): Folder holding the official layout.
        split (str): A name in the split fractions (e.g. ``'train'``, ``'val'``, ``'test'``),
            ``'all'`` (every sample of :meth:`load_samples`), or an official split of
            :meth:`official_splits`. Defaults to ``'train'``.
        split_seed (int): Seed of the divided splits. Defaults to 0.
        split_file (str, optional): JSON record of the divided splits (see
            :func:`~medtrans.datasets.splits.load_or_create_split`): read and checked if it
            exists, else written. Never inside ``data_root``. Only the divided splits use it.
            None computes the split (which :class:`~medtrans.engine.hooks.SplitRecordHook`
            then records in the run's work dir). Defaults to None.
        pipeline (Sequence[dict | Callable]): Transforms, built in the ``medtrans`` registry
            (other packages' with a scope prefix, ``'mmpretrain.PackInputs'``). Defaults to ().
        test_mode (bool): As in :class:`mmengine.dataset.BaseDataset`. Defaults to False.
        split_fractions (dict[str, float], optional): Split name -> fraction of
            :meth:`load_samples`, summing to 1, in the order splits are filled. None uses
            :attr:`SPLIT_FRACTIONS`, the study's. Defaults to None.
        preresized (bool | str): Read images from pre-resized copies where a cache has
            current ones (:mod:`medtrans.datasets.preresize`): True looks for
            ``<data_root>/.preresized``, a str names another cache folder, False reads the
            originals. Defaults to True.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset` (``metainfo``,
            ``indices``, ``serialize_data``, ``lazy_init``, ``max_refetch``, ``ann_file``...).

    Raises:
        ValueError: Bad arguments, an empty split, samples that break the interface, or a split
            file that does not fit.
        FileNotFoundError: ``data_root`` or a file of the layout is missing.
    """

    METAINFO: dict = dict()
    #: Whether samples carry ``gt_score`` vectors (multi-label) instead of a ``gt_label``.
    MULTI_LABEL: bool = False
    #: The study's divided splits: name -> fraction of :meth:`load_samples`.
    SPLIT_FRACTIONS: Dict[str, float] = dict(train=0.8, val=0.1, test=0.1)
    #: The official on-disk layout, shown when data_root or a file is missing.
    LAYOUT: str = ''
    #: Takes ``preresized`` (:func:`~medtrans.datasets.preresize.reads_preresized`).
    READS_PRERESIZED = True

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 split_seed: int = 0,
                 split_file: Optional[str] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: bool = False,
                 split_fractions: Optional[Dict[str, float]] = None,
                 preresized: Union[bool, str] = True,
                 **kwargs) -> None:
        name = type(self).__name__
        if data_root is None:
            raise ValueError(f'{name}: data_root is required (the folder holding the official '
                             'layout)' + (f':\n{self.LAYOUT}' if self.LAYOUT else '.'))
        fractions = dict(self.SPLIT_FRACTIONS if split_fractions is None else split_fractions)
        if ALL_SPLIT in fractions:
            raise ValueError(f'{name}: "{ALL_SPLIT}" names every sample and cannot be a divided '
                             f'split; got split_fractions {fractions}.')
        overrides_official = type(self).official_splits is not BaseClsDataset.official_splits
        if not (split in fractions or (split == ALL_SPLIT and fractions) or overrides_official):
            choices = list(fractions) + ([ALL_SPLIT] if fractions else [])
            raise ValueError(f'{name}: split must be one of {choices}, got {split!r}.')
        if not isinstance(split_seed, int) or isinstance(split_seed, bool):
            raise ValueError(f'{name}: split_seed must be an int, got {split_seed!r}.')
        if split_file is not None:
            # Checked before touching the disk, so that a misplaced split file fails fast.
            check_split_file_path(split_file, data_root)
        self.split = split
        self.split_seed = split_seed
        self.split_file = split_file
        self.split_fractions = fractions
        self.preresized = preresized
        transforms = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        super().__init__(
            ann_file=kwargs.pop('ann_file', ''),
            data_root=data_root,
            pipeline=transforms,
            test_mode=test_mode,
            **kwargs)

    # ---- what subclasses implement -------------------------------------------------------

    def load_samples(self) -> List[dict]:
        """Read the publisher's labelled set, which the divided splits share.

        Returns:
            list[dict]: The samples (see the module docstring).
        """
        raise NotImplementedError(f'{type(self).__name__} does not implement load_samples(); '
                                  'expected it to read the official layout.')

    def official_splits(self) -> Mapping[str, List[dict]]:
        """The publisher-defined splits.

        Only the selected split is looked up (once), and the names are taken by iterating the
        keys, so a mapping that reads a split's files on lookup reads just that split.

        Returns:
            Mapping[str, list[dict]]: Split name -> samples. The base class has none.
        """
        return {}

    # ---- the rest is shared --------------------------------------------------------------

    def _check_samples(self, samples: List[dict], source: str) -> List[dict]:
        """Check the samples against the interface; return them sorted by ``sample_id``."""
        where = f'{type(self).__name__}.{source}()'
        if not isinstance(samples, list):
            raise TypeError(f'{where} returned {type(samples).__name__}; expected a list of '
                            'sample dicts.')
        classes = dataset_metainfo(self).get('classes')
        if not classes:
            raise ValueError(f'{type(self).__name__}: no classes in the metainfo; expected '
                             "METAINFO = dict(classes=(...)) or metainfo=dict(classes=...).")
        num_classes = len(classes)
        for sample in samples:
            sample_id = sample.get('sample_id') if isinstance(sample, dict) else None
            if not isinstance(sample_id, str):
                raise TypeError(f'{where}: sample {sample!r:.200} has no str "sample_id".')
            if self.MULTI_LABEL:
                score = sample.get('gt_score')
                if not (isinstance(score, np.ndarray) and score.dtype == np.float32
                        and score.shape == (num_classes, )):
                    raise TypeError(f'{where}: sample "{sample_id}" has gt_score {score!r}; '
                                    f'expected a float32 vector of {num_classes} entries.')
            else:
                label = sample.get('gt_label')
                if isinstance(label, (bool, np.bool_)) or not isinstance(label,
                                                                          (int, np.integer)):
                    raise TypeError(f'{where}: sample "{sample_id}" has gt_label {label!r}; '
                                    'expected an int class index.')
                if not 0 <= label < num_classes:
                    raise ValueError(f'{where}: sample "{sample_id}" has gt_label {label}; '
                                     f'expected 0..{num_classes - 1} ({list(classes)}).')
                sample['gt_label'] = int(label)
        if self.MULTI_LABEL and samples:
            scores = np.stack([s['gt_score'] for s in samples])
            bad = ~np.isin(scores, (-1, 0, 1))
            if bad.any():
                row = int(np.flatnonzero(bad.any(1))[0])
                raise ValueError(f'{where}: sample "{samples[row]["sample_id"]}" has gt_score '
                                 f'{samples[row]["gt_score"].tolist()}; expected entries 1 '
                                 '(positive), 0 (negative) or -1 (ignored).')
        ids = Counter(s['sample_id'] for s in samples)
        repeated = sorted(i for i, n in ids.items() if n > 1)
        if repeated:
            raise ValueError(f'{where}: sample ids repeat: {repeated[:5]}; expected unique ids.')
        grouped = [_group_of(s) is not None for s in samples]
        if any(grouped) and not all(grouped):
            lacking = samples[grouped.index(False)]['sample_id']
            raise ValueError(f'{where}: sample "{lacking}" has none of {list(GROUP_KEYS)} while '
                             'other samples have one; expected all samples or none to.')
        return sorted(samples, key=lambda s: s['sample_id'])

    def _divide(self, samples: List[dict]) -> Tuple[List[dict], str]:
        """The samples of the divided split ``self.split``, and how the split was made."""
        ids = [s['sample_id'] for s in samples]
        groups = ([_group_of(s) for s in samples]
                  if samples and _group_of(samples[0]) is not None else None)
        stratify = None if self.MULTI_LABEL else [s['gt_label'] for s in samples]
        fractions, seed = self.split_fractions, self.split_seed
        meta = dict(dataset=type(self).__name__, fractions=fractions, split_seed=seed,
                    grouped=groups is not None, stratified=stratify is not None)
        splits = load_or_create_split(
            self.split_file,
            self.data_root,
            ids,
            make_split_fn=lambda all_ids: split_ids(all_ids, fractions, seed, groups=groups,
                                                    stratify=stratify),
            meta=meta)
        self._divided_split = (meta, splits)
        keep = set(splits[self.split])
        how = (f'{_format_fractions(fractions)} of {len(samples)} samples, seed {seed}'
               + (f', grouped by {group_key(samples[0])} ({len(set(groups))} groups)'
                  if groups is not None else '')
               + (', stratified by label' if stratify is not None else '')
               + (f', split file "{self.split_file}"' if self.split_file else ''))
        return [s for s in samples if s['sample_id'] in keep], how

    def load_data_list(self) -> List[dict]:
        """Read the layout, select the split, check and log it.

        Returns:
            list[dict]: The split's samples, sorted by ``sample_id``.
        """
        name = type(self).__name__
        if not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f'{name}: data_root "{self.data_root}" not found' +
                (f'; expected the official layout:\n{self.LAYOUT}' if self.LAYOUT else '.'))
        if self.split in self.split_fractions or (self.split == ALL_SPLIT
                                                  and self.split_fractions):
            samples = self._check_samples(self.load_samples(), 'load_samples')
            if not samples:
                raise ValueError(f'{name}: found no samples in "{self.data_root}"; expected '
                                 + (f'the layout:\n{self.LAYOUT}' if self.LAYOUT else
                                    'labelled images.'))
            if self.split == ALL_SPLIT:
                how = 'every sample, not divided'
            else:
                samples, how = self._divide(samples)
        else:
            official = self.official_splits()
            # Names by iteration and one lookup: a lazy mapping reads only the split asked for.
            names = list(official)
            if self.split not in names:
                choices = list(self.split_fractions) + (
                    [ALL_SPLIT] if self.split_fractions else []) + names
                raise ValueError(f'{name}: split must be one of {choices}, got {self.split!r}.')
            samples = self._check_samples(official[self.split], 'official_splits')
            how = 'the official split'
        if not samples:
            raise ValueError(f'{name}: split "{self.split}" of "{self.data_root}" is empty '
                             f'({how}); expected samples in it.')
        classes = dataset_metainfo(self)['classes']
        MMLogger.get_current_instance().info(
            f'{name} split "{self.split}" ({how}): {len(samples)} samples, '
            f'{len(classes)} classes:\n'
            + summarize_labels(samples, classes, self.MULTI_LABEL))
        return use_preresized(samples, self.data_root, self.preresized, name,
                              pipeline=self.pipeline)

    def get_cat_ids(self, idx: int) -> List[int]:
        """The class indices of a sample: its label, or its positive classes (multi-label).

        Args:
            idx (int): Index of the sample.

        Returns:
            list[int]: Class indices.
        """
        info = self.get_data_info(idx)
        if self.MULTI_LABEL:
            return np.flatnonzero(info['gt_score'] == 1).tolist()
        return [int(info['gt_label'])]

    def extra_repr(self) -> List[str]:
        """Lines added to the dataset's repr."""
        return [f'Data root: \t{self.data_root}', f'Split: \t{self.split}']
