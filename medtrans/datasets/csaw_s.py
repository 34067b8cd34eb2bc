"""CSAW-S: tumour segmentation in screening mammograms, read from the published layout."""
import os
import os.path as osp
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmseg.datasets import BaseSegDataset

from medtrans.registry import DATASETS

from .splits import check_split_file_path, load_or_create_split, split_ids

__all__ = ['CSAWSDataset']

_SPLITS = ('train', 'val', 'trainval', 'test')
_DIVIDED = ('train', 'val')  # divide the training patients, and so use the split record
_ANNOTATORS = (1, 2, 3)
_TWIN = '8bit'  # <patient>_<n>_8bit.png: a grey copy of an image stored as RGB
_TARGET = 'cancer'  # the annotation class that is the foreground

_LAYOUT = """\
  <data_root>/                           (the published CsawS folder)
    anonymized_dataset/<patient>/<patient>_<n>.png           training screenings
    anonymized_dataset/<patient>/<patient>_<n>_<class>.png   their annotations (expert 1)
    test_data/anonymized_dataset/<patient>/<patient>_<n>.png test screenings
    test_data/annotator_{1,2,3}/<patient>/<patient>_<n>_<class>.png"""


def _examples(items: Sequence[str], limit: int = 5) -> str:
    shown = ', '.join(items[:limit])
    return shown + (f', ... ({len(items)} in all)' if len(items) > limit else '')


def _patient_folders(folder: str) -> List[str]:
    """Sorted names of the patient folders in ``folder`` (other entries are not patients)."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'CSAWSDataset: folder "{folder}" not found; expected the '
                                f'patient folders of the published layout:\n{_LAYOUT}')
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def _scan_patient(folder: str, patient: str) -> Tuple[Dict[str, str], Dict[str, Dict[str, str]]]:
    """The images and annotations of one patient folder.

    Returns:
        tuple: ``{stem: image path}`` and ``{stem: {class: annotation path}}``, where ``stem`` is
        ``<patient>_<n>``. ``_8bit.png`` twins, files that are not PNG and entries that are not
        regular files (a folder named like an image is then a missing image) are left out.

    Raises:
        ValueError: A PNG not named after the patient as the layout names files.
    """
    pattern = re.compile(rf'^({re.escape(patient)}_\d+)(?:_([A-Za-z0-9_-]+))?\.png$')
    images: Dict[str, str] = {}
    annotations: Dict[str, Dict[str, str]] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not (entry.name.endswith('.png') and entry.is_file()):
            continue
        match = pattern.match(entry.name)
        if match is None:
            raise ValueError(
                f'CSAWSDataset: "{entry.path}" is not named <patient>_<n>.png or '
                f'<patient>_<n>_<class>.png with patient "{patient}" (its folder); expected only '
                f'screenings and annotations of that patient:\n{_LAYOUT}')
        stem, suffix = match.groups()
        if suffix is None:
            images[stem] = entry.path
        elif suffix != _TWIN:
            annotations.setdefault(stem, {})[suffix] = entry.path
    return images, annotations


@DATASETS.register_module()
class CSAWSDataset(BaseSegDataset):
    """CSAW-S tumour segmentation (Matsoukas et al., 2020), read from the published layout.

    The dataset is published at https://zenodo.org/record/4030660; ``data_root`` is its
    ``CsawS`` folder:

    .. code-block:: none

        anonymized_dataset/<patient>/<patient>_<n>.png            screening (sample)
        anonymized_dataset/<patient>/<patient>_<n>_<class>.png    binary annotation per class
        test_data/anonymized_dataset/<patient>/<patient>_<n>.png
        test_data/annotator_1/<patient>/<patient>_<n>_<class>.png (and annotator_2, annotator_3)

    A sample is a screening ``<patient>_<n>.png`` with its binary ``cancer`` annotation
    ``<patient>_<n>_cancer.png`` (the study's target) as its mask: {0, 255} or {0, 1}, loaded by
    ``LoadBinaryMask`` as {0, 1} (background, tumour). Annotations of other classes
    (``mammary_gland``, ``pectoral_muscle``, ...) are not used, and the ``_8bit.png`` grey
    twins that screenings stored as RGB carry are not read: the screening itself is, as in the
    study's conversion script (``LoadImageStrict`` makes any image 3-channel). A screening
    without its target annotation, or an annotation without its screening, is an error.

    Splits: ``train`` and ``val`` divide the training patients (``anonymized_dataset``) by a
    seeded deterministic split grouped by patient, ``val_fraction`` of the images to ``val``
    (as near as whole patients allow; :func:`~medtrans.datasets.splits.split_ids`); ``trainval``
    is all of them. ``test`` is ``test_data``, scored against ``annotator`` (1, the expert who
    annotated the training set, by default; 2 or 3 for the others).
    ``tools/analysis/annotator_agreement.py`` reports the IoU between the annotators.

    Data infos carry ``patient_id``, so that ``tools/check_dataset.py`` verifies that no
    patient crosses the splits.

    Args:
        data_root (str): The ``CsawS`` folder.
        split (str): One of ``'train'``, ``'val'``, ``'trainval'``, ``'test'``.
            Defaults to ``'train'``.
        annotator (int): Whose annotations score ``test``: 1, 2 or 3. The training patients
            carry annotator 1's only. Defaults to 1.
        val_fraction (float): Fraction of the training images in ``val``, in (0, 1).
            Defaults to 0.1.
        split_seed (int): Seed of the train/val split. Defaults to 0.
        split_file (str, optional): JSON record of the train/val split, as for
            :class:`~medtrans.datasets.ISIC2018Task1Dataset`. Defaults to None.
        pipeline, test_mode, metainfo, indices, serialize_data, lazy_init, max_refetch,
        ignore_index: As for :class:`~medtrans.datasets.ISIC2018Task1Dataset`.

    Raises:
        FileNotFoundError: A missing folder, a screening without its annotation or an annotation
            without its screening.
        ValueError: Bad arguments, a misnamed PNG, an empty split, or a split file that does
            not fit.
    """

    #: ``mask_file_name``: the layout's annotation name, which ``tools/test.py --out-dir``
    #: writes predictions as.
    METAINFO = dict(classes=('background', 'cancer'), palette=[[0, 0, 0], [255, 0, 0]],
                    mask_file_name='{stem}_cancer.png')
    #: Who annotated the test set (``annotator``); see ``tools/analysis/annotator_agreement.py``.
    ANNOTATORS = _ANNOTATORS
    #: Its tiny layout for the fuzz tests (see :mod:`medtrans.datasets.synthetic`).
    SYNTHETIC_LAYOUT = 'medtrans.datasets.synthetic.csaw_s:csaw_s_layout'

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 annotator: int = 1,
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
        if split not in _SPLITS:
            raise ValueError(f'CSAWSDataset: split must be one of {list(_SPLITS)}, got '
                             f'{split!r}.')
        if annotator not in _ANNOTATORS:
            raise ValueError(f'CSAWSDataset: annotator must be one of {list(_ANNOTATORS)}, got '
                             f'{annotator!r}.')
        if annotator != 1 and split != 'test':
            raise ValueError(f'CSAWSDataset: annotator={annotator} with split {split!r}: the '
                             'training patients carry annotator 1\'s annotations only; the '
                             "other annotators are selectable for split 'test'.")
        if not 0 < val_fraction < 1:
            raise ValueError('CSAWSDataset: val_fraction must lie strictly between 0 and 1, '
                             f'got {val_fraction!r}.')
        if data_root is None:
            raise ValueError(f'CSAWSDataset: data_root is required (the CsawS folder):\n'
                             f'{_LAYOUT}')
        if split_file is not None:
            check_split_file_path(split_file, data_root)
        self.split = split
        self.annotator = annotator
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.split_file = split_file
        if split == 'test':
            folders = ('test_data/anonymized_dataset', f'test_data/annotator_{annotator}')
        else:
            folders = ('anonymized_dataset', 'anonymized_dataset')
        super().__init__(
            img_suffix='.png',
            seg_map_suffix=f'_{_TARGET}.png',
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=dict(img_path=folders[0], seg_map_path=folders[1]),
            indices=indices,
            serialize_data=serialize_data,
            pipeline=list(pipeline),
            test_mode=test_mode,
            lazy_init=lazy_init,
            max_refetch=max_refetch,
            ignore_index=ignore_index,
            reduce_zero_label=False)

    def _samples(self, img_root: str, ann_root: str) -> List[Tuple[str, str, str, str]]:
        """(patient, stem, image path, annotation path) of every screening, sorted."""
        patients = _patient_folders(img_root)
        ann_patients = patients if ann_root == img_root else _patient_folders(ann_root)
        unannotated = sorted(set(patients).difference(ann_patients))
        if unannotated:
            raise FileNotFoundError(
                f'CSAWSDataset: patient "{unannotated[0]}" of "{img_root}" has no folder in '
                f'"{ann_root}"; expected the annotations of every screening (patients without: '
                f'{_examples(unannotated)}).')
        samples = []
        for patient in patients:
            images, annotations = _scan_patient(osp.join(img_root, patient), patient)
            if ann_root != img_root:
                _, annotations = _scan_patient(osp.join(ann_root, patient), patient)
            targets = {stem: classes[_TARGET]
                       for stem, classes in annotations.items() if _TARGET in classes}
            orphans = sorted(set(targets).difference(images))
            if orphans:
                raise FileNotFoundError(
                    f'CSAWSDataset: annotation "{targets[orphans[0]]}" has no screening; '
                    f'expected "{osp.join(img_root, patient, orphans[0] + ".png")}".')
            for stem in sorted(images):
                if stem not in targets:
                    raise FileNotFoundError(
                        f'CSAWSDataset: screening "{images[stem]}" has no {_TARGET} annotation; '
                        f'expected "{osp.join(ann_root, patient, f"{stem}_{_TARGET}.png")}".')
                samples.append((patient, stem, images[stem], targets[stem]))
        if not samples:
            raise ValueError(f'CSAWSDataset (split "{self.split}"): no screenings in '
                             f'"{img_root}"; expected the layout:\n{_LAYOUT}')
        return samples

    def _select(self, patient_of: Dict[str, str]) -> List[str]:
        """The stems of ``self.split`` (``train`` or ``val``) among the training screenings
        (``patient_of``: stem -> patient)."""
        fractions = {'train': 1 - self.val_fraction, 'val': self.val_fraction}
        splits = load_or_create_split(
            self.split_file,
            self.data_root,
            list(patient_of),
            make_split_fn=lambda ids: split_ids(
                ids, fractions, self.split_seed, groups=[patient_of[i] for i in ids]),
            meta=dict(dataset=type(self).__name__, val_fraction=self.val_fraction,
                      split_seed=self.split_seed))
        selected = splits[self.split]
        if not selected:
            raise ValueError(
                f'CSAWSDataset: split "{self.split}" is empty: {len(set(patient_of.values()))} '
                'training '
                f'patients with val_fraction={self.val_fraction} leave none for it'
                + (f' (split_file "{self.split_file}")' if self.split_file else '') + '.')
        return selected

    def load_data_list(self) -> List[dict]:
        """Pair screenings with their target annotations and select the split's samples.

        Returns:
            list[dict]: One dict per screening with ``img_path``, ``seg_map_path``,
            ``patient_id``, ``label_map``, ``reduce_zero_label`` and ``seg_fields``, sorted by
            patient and screening.
        """
        if not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f'CSAWSDataset: data_root "{self.data_root}" not found. Expected the published '
                f'CSAW-S layout:\n{_LAYOUT}\nThe dataset is published at '
                'https://zenodo.org/record/4030660.')
        samples = self._samples(self.data_prefix['img_path'], self.data_prefix['seg_map_path'])
        if self.split in _DIVIDED:
            keep = set(self._select({stem: patient for patient, stem, _, _ in samples}))
            samples = [sample for sample in samples if sample[1] in keep]
        return [
            dict(img_path=img_path, seg_map_path=ann_path, patient_id=patient,
                 label_map=self.label_map, reduce_zero_label=False, seg_fields=[])
            for patient, _, img_path, ann_path in samples
        ]
