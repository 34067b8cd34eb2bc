"""Python inference API: load a trained model, predict on image files, extract embeddings.

mmseg's ``init_model``/``inference_model`` and mmpretrain's inferencers each serve one task and
read their own config conventions; medtrans models of every task (segmentation, classification,
DINO backbones) share one test pipeline per config, so one API serves them all:

.. code-block:: python

    from medtrans.apis import init_model, inference, extract_features, list_images
    model = init_model('configs/deeplab3_deit_s_isic2018.py', 'best_IoU_iter_N.pth', 'cuda')
    samples = inference(model, ['lesion.jpg'])   # SegDataSample: pred_sem_seg at the image size
    embeddings = extract_features(model, 'new_images/')   # (N, 384): the backbone embeddings
    names = list_images('new_images/')                    # the image of each row, in order

Images are given as ``tools/infer.py`` takes them: files, folders (searched recursively for
:data:`IMAGE_EXTENSIONS`, sorted) or a mix, in the order of :func:`list_images`. They go through
the config's test pipeline (its loading transform included, so 16-bit, greyscale and DICOM
files are read as in testing); label loading is skipped, as the images have none. Each data
sample carries ``img_path`` and, where the pipeline packs it, ``sample_id`` (:func:`image_ids`).
"""
import os
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from torch import nn

from medtrans.fileio import atomic_write_bytes
from medtrans.registry import DATASETS, MODELS, TRANSFORMS
from medtrans.utils.progress import to_current_logger, track

from .cli import load_config

__all__ = [
    'init_model', 'inference', 'extract_features', 'infer_to_dir', 'sliding_window',
    'list_images', 'image_ids', 'IMAGE_EXTENSIONS'
]

#: File extensions that :func:`list_images` collects from a folder (any case).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.dcm')

#: Images as the API takes them: a file or folder, or a sequence of files and folders.
Images = Union[str, Sequence[str]]


def list_images(inputs: Images) -> List[str]:
    """The image files of files, folders or a mix, as ``tools/infer.py`` and the API read them.

    A file is taken as given, whatever its extension (the pipeline's loading transform decides
    whether it is an image); a folder gives its files with an extension of
    :data:`IMAGE_EXTENSIONS`, searched recursively (links followed) and sorted by path.

    Args:
        inputs (str | Sequence[str]): A file or folder, or several.

    Returns:
        list[str]: The image files, in the order of ``inputs`` (a folder's in sorted order).

    Raises:
        FileNotFoundError: An input that is neither a file nor a folder, or a folder without
            images.
    """
    files: List[str] = []
    for item in [inputs] if isinstance(inputs, str) else inputs:
        if osp.isfile(item):
            files.append(item)
        elif osp.isdir(item):
            found = sorted(osp.join(root, name)
                           for root, _, names in os.walk(item, followlinks=True)
                           for name in names if name.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f'{item}: no image files ({", ".join(IMAGE_EXTENSIONS)})')
            files.extend(found)
        else:
            raise FileNotFoundError(f'{item}: no such file or folder')
    return files


def image_ids(paths: Sequence[str]) -> List[str]:
    """Short, unique names of image files: their paths relative to the folder holding them all.

    ``['in/a.jpg', 'in/sub/b.jpg']`` gives ``['a.jpg', 'sub/b.jpg']``; one file gives its name.
    ``/`` separates folders on every system. They are the ``sample_id`` of
    :func:`inference`'s data samples and of ``predictions.csv`` (:func:`infer_to_dir`).

    Args:
        paths (Sequence[str]): Image files, e.g. from :func:`list_images`.

    Returns:
        list[str]: One id per path, in order.
    """
    if not paths:
        return []
    absolute = [osp.abspath(path) for path in paths]
    root = osp.commonpath([osp.dirname(path) for path in absolute])
    return [osp.relpath(path, root).replace(os.sep, '/') for path in absolute]


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a config's model, load a checkpoint into it and put it in eval mode.

    Args:
        config (str | Config): Config file (read by :func:`medtrans.apis.load_config`) or a
            loaded config.
        checkpoint (str, optional): A medtrans run checkpoint, read with ``weights_only``; the
            config's ``pretrained`` file is then not read (as in ``tools/test.py``), so it need
            not exist. None keeps the config's own initialisation (that file, or random).
        device (str | torch.device): Where the model runs. Defaults to 'cpu'.
        cfg_options (dict, optional): Overrides, as ``--cfg-options``. Defaults to None.

    Returns:
        nn.Module: The model, with ``cfg`` (the config) and ``dataset_meta`` (the checkpoint's,
        else the test dataset class's ``METAINFO``) attached.
    """
    cfg = load_config(config, cfg_options) if isinstance(config, str) else config
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'medtrans')):
        model = MODELS.build(cfg.model)
        dataset_meta = None
        if checkpoint is None:
            model.init_weights()
        else:
            loaded = load_checkpoint(model, checkpoint, map_location='cpu')
            dataset_meta = loaded.get('meta', {}).get('dataset_meta')
        if dataset_meta is None and cfg.get('test_dataloader'):
            dataset_cls = DATASETS.get(cfg.test_dataloader.dataset.type)
            dataset_meta = dict(getattr(dataset_cls, 'METAINFO', {}))
    model.cfg = cfg
    model.dataset_meta = dataset_meta or {}
    return model.to(device).eval()


def _test_pipeline(model: nn.Module) -> Compose:
    cfg = model.cfg
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if not loader or 'pipeline' not in loader.get('dataset', {}):
        raise ValueError('inference: the config has no test_dataloader (or val_dataloader) '
                         'dataset pipeline to read the images with.')
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'medtrans')):
        return Compose([TRANSFORMS.build(t) for t in loader.dataset.pipeline])


def _batches(model: nn.Module, paths: Sequence[str], batch_size: int) -> Iterator[dict]:
    """The collated pipeline outputs of image files (from :func:`list_images`), a batch each."""
    pipeline = _test_pipeline(model)
    ids = image_ids(paths)
    for start in range(0, len(paths), batch_size):
        yield pseudo_collate([
            pipeline(dict(img_path=paths[index], sample_id=ids[index], sample_idx=index))
            for index in range(start, min(start + batch_size, len(paths)))
        ])


def model_inputs(model: nn.Module, images: Images, batch_size: int = 1):
    """Image files as the model receives them: through the config's test pipeline and the
    model's data preprocessor, a batch at a time.

    Args:
        model (nn.Module): From :func:`init_model`.
        images (str | Sequence[str]): Image files, folders or a mix (:func:`list_images`).
        batch_size (int): Images per batch. Defaults to 1.

    Yields:
        tuple: ``(inputs, batch)``: the preprocessed (B, C, H, W) tensor on the model's device,
        and the collated pipeline output (``batch['inputs']`` the images before normalisation,
        uint8 in the loading order of channels, BGR for colour images).
    """
    for batch in _batches(model, list_images(images), batch_size):
        yield model.data_preprocessor(batch, False)['inputs'], batch


@torch.no_grad()
def inference(model: nn.Module, images: Images, batch_size: int = 1) -> list:
    """Predict on image files through the config's test pipeline.

    Args:
        model (nn.Module): From :func:`init_model`.
        images (str | Sequence[str]): Image files, folders or a mix (:func:`list_images`).
        batch_size (int): Images per forward pass. Defaults to 1.

    Returns:
        list: One data sample per image of :func:`list_images`, in its order, as the model's
        ``test_step`` gives it: ``pred_sem_seg`` (segmentation, at the image's size) or
        ``pred_score`` (classification); ``img_path`` names the image.

    Raises:
        FileNotFoundError: An input that is neither a file nor a folder, or a folder without
            images.
    """
    results = []
    for batch in _batches(model, list_images(images), batch_size):
        results.extend(model.test_step(batch))
    return results


@torch.no_grad()
def extract_features(model: nn.Module, images: Images, batch_size: int = 1,
                     progress: bool = True) -> torch.Tensor:
    """The backbone embedding of image files (the :class:`EmbeddingBackbone` interface: CLS
    token of a ViT, pooled last stage of a CNN), through the config's test pipeline.

    Args:
        model (nn.Module): From :func:`init_model`; its ``backbone`` has ``forward_embedding``
            (medtrans backbones; for DINO models the student's, see ``embedding`` in
            ``docs/knn.md`` for the teacher).
        images (str | Sequence[str]): Image files, folders or a mix (:func:`list_images`).
        batch_size (int): Images per forward pass. Defaults to 1.
        progress (bool): Show the progress: a bar on a terminal, else a log line every 30 s
            (:func:`medtrans.utils.progress.track`). Defaults to True.

    Returns:
        torch.Tensor: (N, C) embeddings on the model's device, one row per image of
        :func:`list_images` ``(images)``, in its order.

    Raises:
        FileNotFoundError: An input that is neither a file nor a folder, or a folder without
            images.
    """
    backbone = getattr(model, 'backbone', None)
    if not callable(getattr(backbone, 'forward_embedding', None)):
        raise TypeError(f'extract_features: {type(model).__name__}.backbone has no '
                        'forward_embedding (the EmbeddingBackbone interface of medtrans '
                        'backbones).')
    paths = list_images(images)
    batches = _batches(model, paths, batch_size)
    features = []
    for batch in track(batches, -(-len(paths) // batch_size),
                       f'extract_features ({len(paths)} images, batches of {batch_size})',
                       log=to_current_logger if progress else None):
        inputs = model.data_preprocessor(batch, False)['inputs']
        features.append(backbone.forward_embedding(inputs))
    return torch.cat(features)


def sliding_window(cfg: Config, stride: Optional[int] = None) -> Config:
    """Make a segmentation config infer over windows at the image's own resolution.

    The test pipeline's ``Resize`` is dropped and mmseg's slide mode runs the model on windows
    of its input size (the data preprocessor's ``size``), ``stride`` apart (default: two thirds
    of the window), averaging the logits where windows overlap.
    """
    size = cfg.model.get('data_preprocessor', {}).get('size')
    if size is None or 'test_cfg' not in cfg.model:
        raise ValueError('--slide: a segmentation config (model.test_cfg and the data '
                         "preprocessor's size) is needed.")
    step = stride or max(1, int(size[0] * 2 / 3))
    cfg.model.test_cfg = dict(mode='slide', crop_size=tuple(size), stride=(step, step))
    pipeline = cfg.test_dataloader.dataset.pipeline
    cfg.test_dataloader.dataset.pipeline = [t for t in pipeline if t['type'] != 'Resize']
    return cfg


def _overlay(img_path: str, mask: torch.Tensor, longer_side: int):
    """The image, shrunk to ``longer_side`` at most, with the foreground tinted red."""
    image = cv2.imread(img_path, cv2.IMREAD_COLOR)
    if image is None:  # e.g. DICOM: no overlay
        return None
    scale = min(1.0, longer_side / max(image.shape[:2]))
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask.cpu().numpy().astype(np.uint8), size,
                      interpolation=cv2.INTER_NEAREST) > 0
    tinted = image.copy()
    tinted[mask] = (0.6 * image[mask] + 0.4 * np.array([0, 0, 255])).astype(np.uint8)
    return tinted


def infer_to_dir(model: nn.Module, images: Images, out_dir: str, batch_size: int = 1,
                 overlays: bool = True, overlay_size: int = 1024) -> str:
    """Predict on image files and write the results (``tools/infer.py``).

    Segmentation: the masks as :class:`~medtrans.evaluation.metrics.DumpSegMasks` writes them
    and, with ``overlays``, ``overlays/<stem>.jpg``. Classification: ``predictions.csv`` as
    :class:`~medtrans.evaluation.metrics.DumpPredictionsCsv` writes it: ``sample_id`` (the
    image's :func:`image_ids` name), ``pred_label`` and the class probabilities (no ground-truth
    column: new images have none).

    Args:
        model (nn.Module): From :func:`init_model`.
        images (str | Sequence[str]): Image files, folders or a mix (:func:`list_images`).
        out_dir (str): Where the outputs go.
        batch_size (int): Images per forward pass. Defaults to 1.
        overlays (bool): Segmentation: write the overlays too. Defaults to True.
        overlay_size (int): Longer side of the overlays in pixels. Defaults to 1024.

    Returns:
        str: What was written.
    """
    from medtrans.evaluation.metrics import DumpPredictionsCsv, DumpSegMasks

    masks = DumpSegMasks(out_dir)
    table = DumpPredictionsCsv(osp.join(out_dir, 'predictions.csv'))
    masks.dataset_meta = table.dataset_meta = model.dataset_meta
    written = 0
    for batch in _batches(model, list_images(images), batch_size):
        with torch.no_grad():
            samples = [s.to_dict() for s in model.test_step(batch)]
        if 'pred_sem_seg' in samples[0]:
            masks.process(None, samples)
            for sample in samples if overlays else ():
                tinted = _overlay(sample['img_path'], sample['pred_sem_seg']['data'][0],
                                  overlay_size)
                if tinted is not None:
                    stem = osp.splitext(osp.basename(sample['img_path']))[0]
                    ok, encoded = cv2.imencode('.jpg', tinted)
                    atomic_write_bytes(osp.join(out_dir, 'overlays', f'{stem}.jpg'),
                                       encoded.tobytes())
                    written += 1
        else:
            table.process(None, samples)
    if table.results:
        table.compute_metrics(table.results)
        return f'predictions.csv ({len(table.results)} images)'
    return f'{len(masks.results)} masks, {written} overlays'
