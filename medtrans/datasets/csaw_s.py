"""CSAW-S: tumour segmentation in screening mammograms, read from the published layout."""
import os
import os.path as osp
import re
from typing import Dict, List, Tuple

from medtrans.registry import DATASETS

from .segmentation import SplitSegDataset
from .utils import settle_problems

__all__ = ['CSAWSDataset']

_ANNOTATORS = (1, 2, 3)
_TWIN = '8bit'  # <patient>_<n>_8bit.png: a grey copy of an image stored as RGB
_TARGET = 'cancer'  # the annotation class that is the foreground

_LAYOUT = """\
  <data_root>/                           (the published CsawS folder)
    anonymized_dataset/<patient>/<patient>_<n>.png           training screenings
    anonymized_dataset/<patient>/<patient>_<n>_<class>.png   their annotations (expert 1)
    test_data/anonymized_dataset/<patient>/<patient>_<n>.png test screenings
    test_data/annotator_{1,2,3}/<patient>/<patient>_<n>_<class>.png"""


def _patient_folders(folder: str) -> List[str]:
    """Sorted names of the patient folders in ``folder`` (other entries are not patients)."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'CSAWSDataset: folder "{folder}" not found; expected the '
                                f'patient folders of the published layout:\n{_LAYOUT}')
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def _scan_patient(folder: str, patient: str, problems: List[Exception]
                  ) -> Tuple[Dict[str, str], Dict[str, Dict[str, str]]]:
    """The images and annotations of one patient folder.

    Returns:
        tuple: ``{stem: image path}`` and ``{stem: {class: annotation path}}``, where ``stem`` is
        ``<patient>_<n>``. ``_8bit.png`` twins, files that are not PNG and entries that are not
        regular files (a folder named like an image is then a missing image) are left out.

    A PNG not named after the patient as the layout names files is a ``ValueError`` appended
    to ``problems`` (and left out).
    """
    pattern = re.compile(rf'^({re.escape(patient)}_\d+)(?:_([A-Za-z0-9_-]+))?\.png$')
    images: Dict[str, str] = {}
    annotations: Dict[str, Dict[str, str]] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not (entry.name.endswith('.png') and entry.is_file()):
            continue
        match = pattern.match(entry.name)
        if match is None:
            problems.append(ValueError(
                f'CSAWSDataset: "{entry.path}" is not named <patient>_<n>.png or '
                f'<patient>_<n>_<class>.png with patient "{patient}" (its folder); expected only '
                'screenings and annotations of that patient'))
            continue
        stem, suffix = match.groups()
        if suffix is None:
            images[stem] = entry.path
        elif suffix != _TWIN:
            annotations.setdefault(stem, {})[suffix] = entry.path
    return images, annotations


@DATASETS.register_module()
class CSAWSDataset(SplitSegDataset):
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
        **kwargs: ``val_fraction``, ``split_seed``, ``split_file``, ``pipeline`` and the other
            arguments of :class:`~medtrans.datasets.segmentation.SplitSegDataset`.

    Raises:
        FileNotFoundError: A missing folder, a screening without its annotation or an annotation
            without its screening (:class:`~medtrans.datasets.utils.MissingFiles` for several).
        ValueError: Bad arguments, a misnamed PNG, an empty split, or a split file that does
            not fit (:class:`~medtrans.datasets.utils.DataProblems` for several problems of
            which not all are missing files).
    """

    #: ``mask_file_name``: the layout's annotation name, which ``tools/test.py --out-dir``
    #: writes predictions as.
    METAINFO = dict(classes=('background', 'cancer'), palette=[[0, 0, 0], [255, 0, 0]],
                    mask_file_name='{stem}_cancer.png')
    #: Who annotated the test set (``annotator``); see ``tools/analysis/annotator_agreement.py``.
    ANNOTATORS = _ANNOTATORS

    SPLITS = ('train', 'val', 'trainval', 'test')
    SPLIT_RECORD = 'csaw_s'
    LAYOUT = _LAYOUT
    SOURCE = 'The dataset is published at https://zenodo.org/record/4030660.'

    def __init__(self, data_root: str, split: str = 'train', annotator: int = 1,
                 **kwargs) -> None:
        if annotator not in _ANNOTATORS:
            raise ValueError(f'CSAWSDataset: annotator must be one of {list(_ANNOTATORS)}, got '
                             f'{annotator!r}.')
        if annotator != 1 and split != 'test':
            raise ValueError(f'CSAWSDataset: annotator={annotator} with split {split!r}: the '
                             "training patients carry annotator 1's annotations only; the "
                             "other annotators are selectable for split 'test'.")
        self.annotator = annotator
        super().__init__(data_root, split, **kwargs)

    def folders(self, split: str) -> Tuple[str, str]:
        if split == 'test':
            return 'test_data/anonymized_dataset', f'test_data/annotator_{self.annotator}'
        return 'anonymized_dataset', 'anonymized_dataset'

    def samples(self, img_dir: str, mask_dir: str) -> List[dict]:
        """Every screening with its cancer annotation, sorted by patient and screening.

        Every unpaired or misnamed file or patient folder is a problem, all refused together
        (:func:`~medtrans.datasets.utils.settle_problems`; within ``collect_problems`` they are
        reported and left out).
        """
        patients = _patient_folders(img_dir)
        ann_patients = patients if mask_dir == img_dir else _patient_folders(mask_dir)
        problems: List[Exception] = [FileNotFoundError(
            f'CSAWSDataset: patient "{patient}" of "{img_dir}" has no folder in "{mask_dir}"; '
            'expected the annotations of every screening')
            for patient in sorted(set(patients).difference(ann_patients))]
        problems += [FileNotFoundError(
            f'CSAWSDataset: "{osp.join(mask_dir, patient)}" annotates a patient with no folder '
            f'in "{img_dir}"; expected the screenings of every annotated patient')
            for patient in sorted(set(ann_patients).difference(patients))]
        samples = []
        for patient in sorted(set(patients).intersection(ann_patients)):
            images, annotations = _scan_patient(osp.join(img_dir, patient), patient, problems)
            if mask_dir != img_dir:
                _, annotations = _scan_patient(osp.join(mask_dir, patient), patient, problems)
            targets = {stem: classes[_TARGET]
                       for stem, classes in annotations.items() if _TARGET in classes}
            problems += [FileNotFoundError(
                f'CSAWSDataset: annotation "{targets[stem]}" has no screening; expected '
                f'"{osp.join(img_dir, patient, stem + ".png")}"')
                for stem in sorted(set(targets).difference(images))]
            for stem in sorted(images):
                if stem not in targets:
                    problems.append(FileNotFoundError(
                        f'CSAWSDataset: screening "{images[stem]}" has no {_TARGET} annotation; '
                        f'expected "{osp.join(mask_dir, patient, f"{stem}_{_TARGET}.png")}"'))
                    continue
                samples.append(dict(id=stem, group=patient, img_path=images[stem],
                                    seg_map_path=targets[stem], patient_id=patient))
        settle_problems(problems, f'the CSAW-S folder "{img_dir}"' if mask_dir == img_dir else
                        f'the CSAW-S folders "{img_dir}" and "{mask_dir}"')
        if not samples and problems:  # all unpaired, the problems collected (check_dataset)
            raise ValueError(f'CSAWSDataset (split "{self.split}"): no screening of "{img_dir}" '
                             f'has its {_TARGET} annotation in "{mask_dir}".')
        if not samples:
            raise ValueError(f'CSAWSDataset (split "{self.split}"): no screenings in '
                             f'"{img_dir}"; expected the layout:\n{_LAYOUT}')
        return samples
