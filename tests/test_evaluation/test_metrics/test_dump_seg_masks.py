"""DumpSegMasks (tools/test.py --out-dir): names, values and sizes of the written masks."""
import cv2
import numpy as np
import pytest
import torch

from medtrans.datasets import ISIC2018Task1Dataset
from medtrans.evaluation.metrics import DumpSegMasks


def _sample(img_path, mask, ori_shape=None):
    return dict(img_path=img_path, ori_shape=ori_shape or tuple(mask.shape),
                pred_sem_seg=dict(data=torch.as_tensor(mask)[None]))


def test_binary_masks_are_named_as_the_challenge_and_hold_0_and_255(tmp_path):
    metric = DumpSegMasks(str(tmp_path))
    metric.dataset_meta = ISIC2018Task1Dataset.METAINFO
    mask = np.zeros((5, 7), dtype=np.int64)
    mask[1:3, 2:6] = 1
    metric.process({}, [_sample('/data/ISIC_0012345.jpg', mask)])
    assert metric.evaluate(1) == {}
    written = cv2.imread(str(tmp_path / 'ISIC_0012345_segmentation.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(written, mask.astype(np.uint8) * 255)


def test_more_classes_keep_their_index_and_the_default_name(tmp_path):
    metric = DumpSegMasks(str(tmp_path))
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    mask = np.array([[0, 1], [2, 2]])
    metric.process({}, [_sample('scan_7.png', mask)])
    written = cv2.imread(str(tmp_path / 'scan_7.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(written, mask.astype(np.uint8))


def test_a_prediction_not_at_the_image_size_is_refused(tmp_path):
    metric = DumpSegMasks(str(tmp_path))
    metric.dataset_meta = ISIC2018Task1Dataset.METAINFO
    with pytest.raises(ValueError, match=r'ISIC_1.jpg: the prediction is \(4, 4\), not the '
                       r'image size \(8, 8\)'):
        metric.process({}, [_sample('ISIC_1.jpg', np.zeros((4, 4)), ori_shape=(8, 8))])
