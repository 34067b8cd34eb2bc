"""Segmentation overlays at a bounded size: the image and masks shrunk, then drawn as mmseg does."""
import cv2
import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from medtrans.datasets import ISIC2018Task1Dataset
from medtrans.visualization import BoundedSegLocalVisualizer


def _sample(mask: np.ndarray) -> SegDataSample:
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.from_numpy(mask)[None])
    sample.pred_sem_seg = PixelData(data=torch.from_numpy(1 - mask)[None])
    return sample


def _drawn(cls, tmp_path, image, sample, **kwargs):
    """What a visualizer of class ``cls`` saves for ``image`` and ``sample``."""
    visualizer = cls(name=tmp_path.name, vis_backends=[dict(type='LocalVisBackend')],
                     save_dir=str(tmp_path), **kwargs)
    visualizer.dataset_meta = ISIC2018Task1Dataset.METAINFO
    visualizer.add_datasample('case', image, sample, with_labels=False)
    (path, ) = (tmp_path / 'vis_data' / 'vis_image').glob('case*.png')
    return cv2.imread(str(path))


def test_large_images_are_drawn_shrunk_and_small_ones_as_mmseg_draws_them(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 100, 3), np.uint8)
    mask = np.zeros((60, 100), np.uint8)
    mask[10:40, 20:70] = 1
    bounded = _drawn(BoundedSegLocalVisualizer, tmp_path / 'a', image, _sample(mask),
                     max_size=50)
    small_image = cv2.resize(image, (50, 30), interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask, (50, 30), interpolation=cv2.INTER_NEAREST)
    reference = _drawn(SegLocalVisualizer, tmp_path / 'b', small_image, _sample(small_mask))
    assert bounded.shape == (30, 100, 3)  # ground truth beside prediction, each 50x30
    np.testing.assert_array_equal(bounded, reference)
    unchanged = _drawn(BoundedSegLocalVisualizer, tmp_path / 'c', image, _sample(mask),
                       max_size=100)
    np.testing.assert_array_equal(
        unchanged, _drawn(SegLocalVisualizer, tmp_path / 'd', image, _sample(mask)))


def test_masks_of_another_size_are_resized_to_the_drawn_image(tmp_path):
    # Masks of another size than the image drawn (e.g. a pre-resized copy's, over the original).
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (30, 50, 3), np.uint8)
    mask = np.zeros((60, 100), np.uint8)
    mask[10:40, 20:70] = 1
    drawn = _drawn(BoundedSegLocalVisualizer, tmp_path / 'a', image, _sample(mask))
    small_mask = cv2.resize(mask, (50, 30), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(
        drawn, _drawn(SegLocalVisualizer, tmp_path / 'b', image, _sample(small_mask)))


def test_out_dir_names_each_drawing_after_its_image(tmp_path):
    """``tools/test.py --show-dir``: ``<stem>.png`` in the folder, as infer.py's overlays, the
    same drawing the backends would store."""
    image = np.random.default_rng(1).integers(0, 256, (30, 40, 3), np.uint8)
    mask = np.zeros((30, 40), np.uint8)
    mask[5:20, 10:30] = 1
    sample = _sample(mask)
    sample.set_metainfo(dict(img_path='/data/ISIC_0000001.jpg'))
    visualizer = BoundedSegLocalVisualizer(
        name=tmp_path.name, vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path / 'backends'), out_dir=str(tmp_path / 'show'))
    visualizer.dataset_meta = ISIC2018Task1Dataset.METAINFO
    visualizer.add_datasample('test_ISIC_0000001.jpg', image, sample, with_labels=False)
    assert [p.name for p in (tmp_path / 'show').iterdir()] == ['ISIC_0000001.png']
    assert not (tmp_path / 'backends' / 'vis_data' / 'vis_image').exists()
    reference = _drawn(BoundedSegLocalVisualizer, tmp_path / 'ref', image, _sample(mask))
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'show' / 'ISIC_0000001.png')),
                                  reference)
