import shutil

import cv2
import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations, PackSegInputs, Resize

from medtrans.datasets.transforms import LoadBinaryMask, LoadImageStrict
from medtrans.registry import TRANSFORMS
from medtrans.setup_env import register_all_modules

INPUT = 'isic2018_task1/ISIC2018_Task1-2_Training_Input'
TRUTH = 'isic2018_task1/ISIC2018_Task1_Training_GroundTruth'


@pytest.fixture
def real_jpeg(fixtures_dir):
    return fixtures_dir / INPUT / 'ISIC_0000000.jpg'


def test_built_from_config_under_medtrans_scope():
    register_all_modules()
    assert isinstance(TRANSFORMS.build(dict(type='LoadImageStrict')), LoadImageStrict)
    assert isinstance(TRANSFORMS.build(dict(type='LoadBinaryMask')), LoadBinaryMask)
    assert isinstance(TRANSFORMS.build(dict(type='mmseg.PackSegInputs')), PackSegInputs)


def test_image_matches_mmcv_loader_on_real_jpegs(fixtures_dir):
    for path in sorted((fixtures_dir / INPUT).glob('*.jpg')):
        ours = LoadImageStrict()(dict(img_path=str(path)))
        ref = LoadImageFromFile()(dict(img_path=str(path)))
        assert ours['img'].dtype == np.uint8 and ours['img'].shape == (767, 1022, 3)
        np.testing.assert_array_equal(ours['img'], ref['img'])
        assert ours['img_shape'] == ours['ori_shape'] == (767, 1022)
        assert ours['img_path'] == str(path)
    as_float = LoadImageStrict(to_float32=True)(dict(img_path=str(path)))['img']
    assert as_float.dtype == np.float32
    np.testing.assert_array_equal(as_float, ref['img'].astype(np.float32))


def test_grey_16bit_and_alpha_images_become_8bit_3_channel(tmp_path):
    grey = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    cv2.imwrite(str(tmp_path / 'grey.png'), grey)
    img = LoadImageStrict()(dict(img_path=str(tmp_path / 'grey.png')))['img']
    assert img.shape == (12, 10, 3)
    assert all(np.array_equal(img[..., c], grey) for c in range(3))

    deep = (np.arange(12 * 10 * 3).reshape(12, 10, 3) * 181).astype(np.uint16)
    cv2.imwrite(str(tmp_path / 'deep.png'), deep)
    img = LoadImageStrict()(dict(img_path=str(tmp_path / 'deep.png')))['img']
    assert img.dtype == np.uint8
    np.testing.assert_array_equal(img, np.round(deep / 257).astype(np.uint8))

    bgra = np.random.RandomState(0).randint(0, 256, (12, 10, 4)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'bgra.png'), bgra)
    img = LoadImageStrict()(dict(img_path=str(tmp_path / 'bgra.png')))['img']
    np.testing.assert_array_equal(img, bgra[..., :3])

    img = LoadImageStrict(color_type='grayscale')(dict(img_path=str(tmp_path / 'bgra.png')))
    np.testing.assert_array_equal(img['img'], cv2.cvtColor(bgra[..., :3], cv2.COLOR_BGR2GRAY))


def test_jpeg_with_bytes_after_its_end_marker_loads(tmp_path, real_jpeg):
    path = tmp_path / 'trailer.jpg'
    path.write_bytes(real_jpeg.read_bytes() + b'\x00' * 16 + b'camera trailer')
    img = LoadImageStrict()(dict(img_path=str(path)))['img']
    np.testing.assert_array_equal(img, cv2.imread(str(real_jpeg)))


def test_truncated_jpeg_with_exif_thumbnail_is_caught(tmp_path, real_jpeg):
    # The thumbnail's own end marker must not pass for the end of the image, whatever the
    # OpenCV build does with truncated data.
    thumbnail = cv2.imencode('.jpg', np.full((8, 8, 3), 100, np.uint8))[1].tobytes()
    payload = b'Exif\x00\x00' + thumbnail
    content = real_jpeg.read_bytes()
    with_thumbnail = (content[:2] + b'\xff\xe1' + (len(payload) + 2).to_bytes(2, 'big')
                      + payload + content[2:])
    (tmp_path / 'full.jpg').write_bytes(with_thumbnail)
    img = LoadImageStrict()(dict(img_path=str(tmp_path / 'full.jpg')))['img']
    np.testing.assert_array_equal(img, cv2.imread(str(real_jpeg)))
    (tmp_path / 'cut.jpg').write_bytes(with_thumbnail[:len(with_thumbnail) * 2 // 3])
    with pytest.raises(ValueError, match='cut.jpg" is a truncated JPEG'):
        LoadImageStrict()(dict(img_path=str(tmp_path / 'cut.jpg')))


def _bad_files(tmp_path, real_jpeg):
    content = real_jpeg.read_bytes()
    files = {
        'random.jpg': np.random.RandomState(0).bytes(4096),
        'empty.jpg': b'',
        'half.jpg': content[:len(content) // 2],
        'no_end_marker.jpg': content[:-2],
        'text.png': b'not an image at all\n',
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return sorted(files)


def test_bad_image_files_raise_naming_the_file(tmp_path, real_jpeg):
    for name in _bad_files(tmp_path, real_jpeg):
        path = str(tmp_path / name)
        with pytest.raises(ValueError, match='expected a decodable image') as err:
            LoadImageStrict()(dict(img_path=path))
        assert path in str(err.value)
        if name in ('half.jpg', 'no_end_marker.jpg'):
            assert 'truncated JPEG' in str(err.value)
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        LoadImageStrict()(dict(img_path=str(tmp_path / 'missing.jpg')))
    with pytest.raises(ValueError, match='color_type'):
        LoadImageStrict(color_type='unchanged')


def test_bad_mask_files_raise_naming_the_file(tmp_path, real_jpeg):
    for name in _bad_files(tmp_path, real_jpeg):
        path = str(tmp_path / name)
        with pytest.raises(ValueError, match='expected a decodable image') as err:
            LoadBinaryMask()(dict(seg_map_path=path))
        assert path in str(err.value)


def test_real_masks_match_mmseg_loader(fixtures_dir):
    for path in sorted((fixtures_dir / TRUTH).glob('*.png')):
        ours = LoadBinaryMask()(dict(seg_map_path=str(path)))
        ref = LoadAnnotations()(dict(seg_map_path=str(path), seg_fields=[],
                                     reduce_zero_label=False))
        assert ours['gt_seg_map'].dtype == np.uint8
        np.testing.assert_array_equal(ours['gt_seg_map'] * 255, ref['gt_seg_map'])
        assert ours['seg_fields'] == ['gt_seg_map']
        assert ours['reduce_zero_label'] is False


def test_zero_one_and_black_white_colour_masks_load(tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 10:25] = 1
    cv2.imwrite(str(tmp_path / 'zero_one.png'), mask)
    cv2.imwrite(str(tmp_path / 'colour.png'), np.dstack([mask * 255] * 3))
    for name in ('zero_one.png', 'colour.png'):
        results = LoadBinaryMask()(dict(seg_map_path=str(tmp_path / name), seg_fields=['x']))
        np.testing.assert_array_equal(results['gt_seg_map'], mask)
        assert results['seg_fields'] == ['x', 'gt_seg_map']


@pytest.mark.parametrize('values, shown', [((0, 128, 255), r'\[0, 128, 255\]'),
                                           ((0, 1, 255), r'\[0, 1, 255\]'),
                                           ((0, 2), r'\[0, 2\]')])
def test_mask_with_other_values_is_refused(tmp_path, values, shown):
    mask = np.repeat(np.array(values, np.uint8), 10).reshape(len(values), 10)
    cv2.imwrite(str(tmp_path / 'mask.png'), mask)
    with pytest.raises(ValueError, match=rf'mask\.png" holds values {shown}.*\{{0, 255\}}'):
        LoadBinaryMask()(dict(seg_map_path=str(tmp_path / 'mask.png')))


def test_16bit_and_coloured_masks_are_refused(tmp_path):
    cv2.imwrite(str(tmp_path / 'deep.png'), np.ones((8, 8), np.uint16))
    with pytest.raises(ValueError, match='deep.png" holds uint16 pixels; expected an 8-bit'):
        LoadBinaryMask()(dict(seg_map_path=str(tmp_path / 'deep.png')))
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 2] = 255
    cv2.imwrite(str(tmp_path / 'red.png'), red)
    with pytest.raises(ValueError, match=r'red.png" holds values \[76\]'):
        LoadBinaryMask()(dict(seg_map_path=str(tmp_path / 'red.png')))


def test_mask_of_another_size_than_its_image_is_refused(tmp_path, fixtures_dir, real_jpeg):
    mask = fixtures_dir / TRUTH / 'ISIC_0000193_segmentation.png'
    results = LoadImageStrict()(dict(img_path=str(real_jpeg), seg_map_path=str(mask)))
    with pytest.raises(ValueError, match=r'segmentation.png" is 704x1057 \(HxW\) but its image '
                       r'".*ISIC_0000000.jpg" is 767x1022'):
        LoadBinaryMask()(results)


def test_pipeline_with_resize_keeps_masks_in_step(tmp_path, real_jpeg):
    shutil.copy(real_jpeg, tmp_path / 'img.jpg')
    mask = np.zeros((767, 1022), np.uint8)
    cv2.circle(mask, (500, 380), 200, 255, -1)
    cv2.imwrite(str(tmp_path / 'mask.png'), mask)
    sample = dict(img_path=str(tmp_path / 'img.jpg'), seg_map_path=str(tmp_path / 'mask.png'),
                  seg_fields=[])
    resize = Resize(scale=(256, 192), keep_ratio=False)

    # Training order: the mask is loaded first and resized with the image.
    train = PackSegInputs()(resize(LoadBinaryMask()(LoadImageStrict()(dict(sample)))))
    assert train['inputs'].shape == (3, 192, 256)
    gt = train['data_samples'].gt_sem_seg.data
    assert gt.shape == (1, 192, 256) and set(gt.unique().tolist()) == {0, 1}

    # Test order (as in MMSeg): the mask stays at the original size, checked against ori_shape.
    test = PackSegInputs()(LoadBinaryMask()(resize(LoadImageStrict()(dict(sample)))))
    assert test['inputs'].shape == (3, 192, 256)
    assert test['data_samples'].gt_sem_seg.data.shape == (1, 767, 1022)
    assert test['data_samples'].ori_shape == (767, 1022)
