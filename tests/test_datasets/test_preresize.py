"""The pre-resized cache: its copies, the manifest's detection of changed sources, the datasets
reading it, and segmentation scored at the original size."""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from medtrans.apis import load_config, prepare_config
from medtrans.datasets import (
    ISIC2018Task1Dataset,
    ISIC2019Dataset,
    LoadImageStrict,
    check_dataset,
)
from medtrans.datasets.preresize import (
    MANIFEST,
    build_cache,
    preresized_shape,
    reads_preresized,
    use_preresized,
)
from medtrans.registry import DATASETS, METRICS, MODELS
from medtrans.setup_env import register_all_modules
from medtrans.testing.layouts.isic2018 import make_synthetic_isic2018
from medtrans.testing.layouts.isic2019 import isic2019_layout

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HEADLINE = osp.join(REPO, 'configs', 'deeplab3_deit_s_isic2018.py')
SHORT = 64
COPY = (64, 85)  # (90, 120) with its shorter side 64


def _documented_jpeg(path, quality=95):
    """The module docstring's rule for a JPEG: area resize, then a JPEG of that quality."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    small = cv2.resize(img, COPY[::-1], interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode('.jpg', small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)


@pytest.fixture
def isic(tmp_path):
    root = str(tmp_path / 'isic')
    make_synthetic_isic2018(root, 6, 2, 3, size=(90, 120), seed=0)
    return root


def _isic_sources(root):
    """(path, kind) of the training images and masks and the test images, and the pairs."""
    train = ISIC2018Task1Dataset(root, split='trainval', preresized=False)
    test = ISIC2018Task1Dataset(root, split='official_test', preresized=False, test_mode=True)
    infos = [train.get_data_info(i) for i in range(len(train))]
    pairs = [(i['img_path'], i['seg_map_path']) for i in infos]
    sources = [(p, kind) for pair in pairs for p, kind in zip(pair, ('image', 'mask'))]
    sources += [(test.get_data_info(i)['img_path'], 'image') for i in range(len(test))]
    return sources, pairs


def test_preresized_shape_keeps_the_aspect_and_leaves_small_images():
    assert preresized_shape((4000, 6000, 3), 512) == (512, 768)
    assert preresized_shape((6000, 4000), 512) == (768, 512)
    assert preresized_shape((513, 1000), 512) == (512, 998)  # 1000 * 512 / 513 = 998.05
    assert preresized_shape((512, 9000), 512) is None
    assert preresized_shape((300, 500), 512) is None


def test_tool_copies_the_headline_config_and_its_datasets_read_them(isic, tmp_path):
    """Through the tool and the shipped config: copies as documented, training masks copied
    with their images, test masks left at the original size, which ori_shape keeps; the
    prediction is resized back to it and scored there; the dataset check reads the
    originals."""
    env = dict(os.environ, HF_HUB_OFFLINE='1')
    args = [sys.executable, 'tools/dataset_converters/preresize.py', HEADLINE, '--data-root',
            isic, '--short-side', str(SHORT), '--workers', '0']
    run = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    # train 5 images + 5 masks; val 1 image (its mask is read at the original size); test 3.
    assert run.stdout.strip().endswith('14 copied.')
    rerun = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.stdout.strip().endswith('14 up to date.'), rerun.stdout + rerun.stderr

    cfg = load_config(HEADLINE, data_root=isic, img_size=SHORT, pretrained=None)
    prepare_config(cfg, HEADLINE, work_dir=str(tmp_path / 'work'))
    register_all_modules()
    with DefaultScope.overwrite_default_scope('medtrans'):
        train_cfg = dict(cfg.train_dataloader.dataset,
                         pipeline=[dict(type='LoadImageStrict'), dict(type='LoadBinaryMask')])
        train = DATASETS.build(train_cfg)
        original = DATASETS.build(dict(train_cfg, preresized=False))
        test = DATASETS.build(cfg.test_dataloader.dataset)
        model = MODELS.build(cfg.model).eval()
        metric = METRICS.build(cfg.test_evaluator)
    cache = osp.join(isic, '.preresized')
    for index in range(len(train)):
        sample, source = train[index], original[index]
        rel = osp.relpath(source['img_path'], isic)
        assert sample['img_path'] == source['img_path']  # ids, files and messages: originals
        assert sample['img_cache_path'] == osp.join(cache, rel)
        assert sample['seg_map_cache_path'] == osp.join(
            cache, osp.relpath(source['seg_map_path'], isic))
        np.testing.assert_array_equal(sample['img'], _documented_jpeg(source['img_path']))
        np.testing.assert_array_equal(
            sample['gt_seg_map'],
            cv2.resize(source['gt_seg_map'], COPY[::-1], interpolation=cv2.INTER_NEAREST))
        assert sample['ori_shape'] == COPY and sample['gt_seg_map'].shape == COPY

    metric.dataset_meta = test.metainfo
    for index in range(len(test)):
        packed = test[index]
        meta = packed['data_samples'].metainfo
        info = test.get_data_info(index)
        assert meta['img_path'] == info['img_path'] and not info['img_path'].startswith(cache)
        assert info['img_cache_path'].startswith(cache + os.sep)
        assert 'seg_map_cache_path' not in info
        assert meta['ori_shape'] == (90, 120) and meta['img_shape'] == (SHORT, SHORT)
        stored = cv2.imread(info['seg_map_path'], cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(packed['data_samples'].gt_sem_seg.data[0].numpy(),
                                      (stored > 0).astype(np.uint8))
        with torch.no_grad():
            (pred, ) = model.test_step(pseudo_collate([packed]))
        assert tuple(pred.pred_sem_seg.shape) == (90, 120)
        metric.process([], [pred.to_dict()])
    assert set(metric.compute_metrics(metric.results)) >= {'IoU', 'Dice'}
    # A copied test image beside its original-size mask is no mismatch for the check.
    report = check_dataset(cfg)
    assert report.ok, report.format()


def test_manifest_detects_changed_sources_and_a_rerun_rebuilds_only_them(isic, monkeypatch):
    sources, pairs = _isic_sources(isic)
    assert build_cache(isic, sources, SHORT, pairs=pairs, log=lambda _: None) == {'copied': 15}
    manifest = json.load(open(osp.join(isic, '.preresized', MANIFEST)))
    changed, touched = sources[0][0], sources[2][0]
    entry = manifest['files'][osp.relpath(changed, isic)]
    assert entry['shape'] == [90, 120] and entry['copy_shape'] == list(COPY)

    # New content for one image, a new modification time only for another.
    img = cv2.imread(changed)
    cv2.imwrite(changed, 255 - img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    os.utime(touched, ns=(0, os.stat(touched).st_mtime_ns + 10**9))
    warnings = []
    monkeypatch.setattr(MMLogger.get_current_instance(), 'warning', warnings.append)
    train = ISIC2018Task1Dataset(isic, split='trainval')
    copies = [train.get_data_info(i).get('img_cache_path') for i in range(len(train))]
    # Both read from the originals (with their masks): their recorded time no longer matches.
    assert copies[:2] == [None, None]
    assert train.get_data_info(0)['img_path'] == changed
    assert all(p.startswith(osp.join(isic, '.preresized')) for p in copies[2:])
    assert 'seg_map_cache_path' not in train.get_data_info(0)
    (warning, ) = warnings
    assert '2 of 6 samples' in warning and changed in warning and '--short-side 64' in warning

    outcome = build_cache(isic, sources, SHORT, pairs=pairs, log=lambda _: None)
    assert outcome == {'copied': 1, 'touched': 1, 'up to date': 13}
    train = ISIC2018Task1Dataset(isic, split='trainval', pipeline=[LoadImageStrict()])
    assert train[0]['img_cache_path'].startswith(osp.join(isic, '.preresized'))
    np.testing.assert_array_equal(train[0]['img'], _documented_jpeg(changed))

    # Another short side rebuilds everything; a deleted copy is rebuilt.
    os.remove(osp.join(isic, '.preresized', osp.relpath(changed, isic)))
    assert build_cache(isic, sources, SHORT, pairs=pairs, log=lambda _: None) == {
        'copied': 1, 'up to date': 14}
    assert build_cache(isic, sources, 100, pairs=pairs, log=lambda _: None) == {'small': 15}
    assert not osp.exists(osp.join(isic, '.preresized', osp.relpath(changed, isic)))
    train = ISIC2018Task1Dataset(isic, split='trainval')
    assert 'img_cache_path' not in train.get_data_info(0)  # too small to copy: the original


def test_every_medtrans_dataset_reads_the_cache_and_only_with_its_own_loaders(isic):
    from mmpretrain.datasets import ImageNet
    from mmseg.datasets import BaseSegDataset
    from mmseg.datasets.transforms import LoadAnnotations

    from medtrans.datasets import BaseClsDataset
    from medtrans.datasets.segmentation import SplitSegDataset

    register_all_modules()
    ours = [c for c in DATASETS.module_dict.values()
            if isinstance(c, type) and issubclass(c, (BaseClsDataset, SplitSegDataset))]
    assert len(ours) >= 8 and all(reads_preresized(c) for c in ours), ours
    assert not reads_preresized(BaseSegDataset) and not reads_preresized(ImageNet)

    sources, pairs = _isic_sources(isic)
    build_cache(isic, sources, SHORT, pairs=pairs, log=lambda _: None)
    ok = ISIC2018Task1Dataset(isic, split='trainval')
    assert all('img_cache_path' in ok.get_data_info(i) for i in range(len(ok)))
    # mmseg's LoadAnnotations reads seg_map_path: the copies would pair with original masks.
    mixed = ISIC2018Task1Dataset(isic, split='trainval',
                                 pipeline=[LoadImageStrict(), LoadAnnotations()])
    assert not any('img_cache_path' in mixed.get_data_info(i) for i in range(len(mixed)))


def test_classification_copies_and_lossless_png(tmp_path):
    layout = isic2019_layout(str(tmp_path / 'isic2019'))
    dataset = ISIC2019Dataset(**layout.dataset_cfg, preresized=False)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    # A 16-bit PNG beside them: copied losslessly at 16 bits.
    rng = np.random.default_rng(0)
    png = osp.join(layout.root, 'deep.png')
    deep = rng.integers(0, 65536, (40, 30), np.uint16)
    cv2.imwrite(png, deep)
    sources = [(i['img_path'], 'image') for i in infos] + [(png, 'image')]
    # Not copied: a file outside data_root, a DICOM file, a JPEG mask (masks stay lossless).
    others = [(str(tmp_path / 'outside.jpg'), 'image'), (osp.join(layout.root, 'a.dcm'), 'image'),
              (osp.join(layout.root, 'm.jpg'), 'mask')]
    assert build_cache(layout.root, sources + others, 16,
                       log=lambda _: None) == {'copied': 6, 'not copied': 3}
    np.testing.assert_array_equal(
        cv2.imread(osp.join(layout.root, '.preresized', 'deep.png'), cv2.IMREAD_UNCHANGED),
        cv2.resize(deep, (16, 21), interpolation=cv2.INTER_AREA))

    cached = ISIC2019Dataset(**layout.dataset_cfg, pipeline=[LoadImageStrict()])
    off = ISIC2019Dataset(**layout.dataset_cfg, pipeline=[LoadImageStrict()], preresized=False)
    for index in range(len(cached)):
        img = cv2.imread(off[index]['img_path'], cv2.IMREAD_UNCHANGED)
        small = cv2.resize(img, (16, 16), interpolation=cv2.INTER_AREA)
        _, encoded = cv2.imencode('.jpg', small, [cv2.IMWRITE_JPEG_QUALITY, 95])
        np.testing.assert_array_equal(cached[index]['img'], cv2.imdecode(encoded, 1))
        assert cached[index]['ori_shape'] == (16, 16)  # classification: as decoded
        assert cached[index]['gt_label'] == off[index]['gt_label']

    # A cache in another folder (a read-only data root), named by the dataset argument.
    elsewhere = str(tmp_path / 'cache')
    build_cache(layout.root, sources, 8, folder=elsewhere, log=lambda _: None)
    named = ISIC2019Dataset(**layout.dataset_cfg, pipeline=[LoadImageStrict()],
                            preresized=elsewhere)
    assert named[0]['img_cache_path'].startswith(elsewhere + os.sep)
    assert named[0]['img'].shape == (8, 8, 3)


def test_errors_name_the_file(isic, tmp_path):
    sources, pairs = _isic_sources(isic)
    with pytest.raises(ValueError, match='short_side must be a positive int'):
        build_cache(isic, sources, 0)
    with pytest.raises(ValueError, match="kind must be one of"):
        build_cache(isic, [(sources[0][0], 'label')], SHORT)
    bad = osp.join(isic, 'ISIC2018_Task1-2_Test_Input', 'ISIC_0000008.jpg')
    with open(bad, 'wb') as f:
        f.write(b'not an image')
    with pytest.raises(ValueError, match='ISIC_0000008.jpg'):
        build_cache(isic, sources, SHORT, log=lambda _: None)
    # The files converted before the error are recorded, so a rerun resumes.
    done = json.load(open(osp.join(isic, '.preresized', MANIFEST)))['files']
    assert done and osp.relpath(bad, isic) not in done

    mask = sources[1][0]
    cv2.imwrite(mask, np.zeros((90, 121), np.uint8))
    with pytest.raises(ValueError, match=f'Mask "{mask}" is \\[90, 121\\].*expected the same'):
        build_cache(isic, sources[:2], SHORT, pairs=pairs[:1], log=lambda _: None)

    with pytest.raises(FileNotFoundError, match='No pre-resized cache in'):
        use_preresized([], isic, str(tmp_path / 'nowhere'), 'owner')
    other = tmp_path / 'other'
    other.mkdir()
    (other / MANIFEST).write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match='is not a medtrans pre-resized cache manifest'):
        use_preresized([], isic, str(other), 'owner')
