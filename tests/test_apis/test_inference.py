"""The Python inference API and tools/infer.py take image files, folders or a mix."""
import csv
import subprocess
import sys

import pytest
import torch

from medtrans.apis import extract_features, image_ids, inference, init_model, list_images
from medtrans.testing import write_images

TINY_CLS = 'tests/data/configs/tiny_cls_deit_aptos2019.py'


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """``new/a.png``, ``new/sub/b.png`` and ``other/c.png`` (with a non-image beside them)."""
    root = tmp_path_factory.mktemp('infer')
    write_images(str(root / 'new'), ['a.png', 'sub/b.png'], seed=0, size=20)
    write_images(str(root / 'other'), ['c.png'], seed=1, size=20)
    (root / 'new' / 'notes.txt').write_text('not an image')
    return root


@pytest.fixture(scope='module')
def model(repo_root):
    torch.manual_seed(0)
    return init_model(str(repo_root / TINY_CLS))


def test_list_images_takes_files_folders_or_a_mix(images):
    files = [str(images / 'new' / 'a.png'), str(images / 'new' / 'sub' / 'b.png'),
             str(images / 'other' / 'c.png')]
    assert list_images(str(images / 'new')) == files[:2]
    assert list_images([files[2], str(images / 'new')]) == [files[2]] + files[:2]
    assert image_ids(files) == ['new/a.png', 'new/sub/b.png', 'other/c.png']
    assert image_ids(files[2:]) == ['c.png']
    with pytest.raises(FileNotFoundError, match='nowhere: no such file or folder'):
        list_images([str(images / 'nowhere')])
    (images / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match=r'empty: no image files \(.jpg, .jpeg, .png'):
        list_images(str(images / 'empty'))


def test_inference_and_features_of_a_folder_and_a_file(images, model):
    folder, file = str(images / 'new'), str(images / 'other' / 'c.png')
    samples = inference(model, [folder, file], batch_size=2)
    assert [(s.img_path, s.sample_id) for s in samples] == [
        (str(images / 'new' / 'a.png'), 'new/a.png'),
        (str(images / 'new' / 'sub' / 'b.png'), 'new/sub/b.png'), (file, 'other/c.png')]
    features = extract_features(model, [folder, file])
    assert features.shape == (3, 192)
    # One image at a time gives the same rows: the order is list_images'.
    for row, path in zip(features, list_images([folder, file])):
        torch.testing.assert_close(extract_features(model, path)[0], row)


def test_infer_tool_names_each_image_by_its_relative_path(images, model, tmp_path, repo_root):
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    out_dir = tmp_path / 'out'
    run = subprocess.run(
        [sys.executable, 'tools/infer.py', TINY_CLS, str(checkpoint), str(images / 'new'),
         str(images / 'other' / 'c.png'), '--out-dir', str(out_dir)],
        cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    with open(out_dir / 'predictions.csv', newline='') as f:
        rows = list(csv.reader(f))
    classes = model.dataset_meta['classes']
    # No ground truth for new images: no gt_label column.
    assert rows[0] == ['sample_id', 'pred_label'] + [f'prob_{c}' for c in classes]
    assert [row[0] for row in rows[1:]] == ['new/a.png', 'new/sub/b.png', 'other/c.png']
    probs = torch.tensor([[float(p) for p in row[2:]] for row in rows[1:]])
    assert [int(row[1]) for row in rows[1:]] == probs.argmax(1).tolist()
