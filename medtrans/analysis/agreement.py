"""Agreement between annotators of a segmentation test set, scored as models are scored."""
import copy
import itertools
from typing import Dict, Optional, Sequence

from mmcv.transforms import LoadImageFromFile
from mmengine.registry import DefaultScope

from medtrans.datasets.check import loading_steps
from medtrans.datasets.transforms import LoadImageStrict
from medtrans.evaluation.metrics import LesionSegMetric
from medtrans.registry import DATASETS, TRANSFORMS, is_registered_subclass

__all__ = ['annotator_agreement']

#: The image loaders, left out of the pipeline: only the masks are compared.
_IMAGE_LOADERS = (LoadImageStrict, LoadImageFromFile)


def _loads_image(step) -> bool:
    """Whether a pipeline step (config or transform) is an image loader (:data:`_IMAGE_LOADERS`)."""
    if isinstance(step, dict):
        return is_registered_subclass(TRANSFORMS, step.get('type'), _IMAGE_LOADERS)
    return isinstance(step, _IMAGE_LOADERS)


def annotator_agreement(dataset_cfg: dict,
                        annotators: Optional[Sequence[int]] = None) -> Dict[str, Dict[str, float]]:
    """Score every pair of annotators' masks of the same images with ``LesionSegMetric``.

    The dataset is built once per annotator (its ``annotator`` argument), with the mask loading
    steps of its own pipeline, and each image's masks are read together, so memory holds one
    image's masks at a time. For the pair ``a-b``, ``b``'s masks play the prediction and ``a``'s
    the ground truth; the scores reported (IoU, Jaccard, Dice) are symmetric, so this is the
    IoU a model would get if it drew as ``b`` does and were scored against ``a``.

    Args:
        dataset_cfg (dict): A dataset config with an ``annotator`` argument, e.g. a config's
            ``test_dataloader.dataset`` for CSAW-S.
        annotators (Sequence[int], optional): The annotators compared; at least two. Defaults
            to the dataset class's ``ANNOTATORS``.

    Returns:
        dict[str, dict[str, float]]: ``'a-b'`` -> ``LesionSegMetric`` scores, for ``a < b``.

    Raises:
        ValueError: Fewer than two annotators, a dataset class without annotators, or
            annotators whose sets hold different images.
    """
    with DefaultScope.overwrite_default_scope('medtrans'):
        dataset_cls = DATASETS.get(dataset_cfg['type'])
        if annotators is None:
            annotators = getattr(dataset_cls, 'ANNOTATORS', None)
            if annotators is None:
                raise ValueError(f'{dataset_cfg["type"]} names no ANNOTATORS; expected a '
                                 'dataset whose test set has several annotators (e.g. CSAW-S).')
        annotators = sorted(set(annotators))
        if len(annotators) < 2:
            raise ValueError(f'annotator_agreement: expected at least two annotators, got '
                             f'{annotators}.')
        # The pipeline's loading steps but the image's: only the masks are compared.
        steps = [TRANSFORMS.build(step) if isinstance(step, dict) else step
                 for step in loading_steps(dataset_cfg.get('pipeline', []))
                 if not _loads_image(step)]
        datasets = {}
        for annotator in annotators:
            cfg = copy.deepcopy(dict(dataset_cfg))
            cfg.update(annotator=annotator, pipeline=[])
            datasets[annotator] = DATASETS.build(cfg)
    images = {a: [d.get_data_info(i)['img_path'] for i in range(len(d))]
              for a, d in datasets.items()}
    first = annotators[0]
    for annotator in annotators[1:]:
        if images[annotator] != images[first]:
            raise ValueError(f'annotators {first} and {annotator} annotate different images '
                             f'({len(images[first])} and {len(images[annotator])}); expected '
                             'the same test images.')
    metrics = {pair: LesionSegMetric() for pair in itertools.combinations(annotators, 2)}
    for index, img_path in enumerate(images[first]):
        masks = {}
        for annotator, dataset in datasets.items():
            results = dataset.get_data_info(index)
            for step in steps:
                results = step(results)
            masks[annotator] = results['gt_seg_map']
        for (a, b), metric in metrics.items():
            metric.process(None, [dict(img_path=img_path,
                                       pred_sem_seg=dict(data=masks[b][None]),
                                       gt_sem_seg=dict(data=masks[a][None]))])
    return {f'{a}-{b}': metric.compute_metrics(metric.results)
            for (a, b), metric in metrics.items()}
