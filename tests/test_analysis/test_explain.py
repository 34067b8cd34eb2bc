"""Grad-CAM of the shipped CNN configs against a hand-written Grad-CAM, and the Figure 4 and
attention-distance tools on checkpoints of the shipped configs."""
import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from medtrans.analysis.attention import cls_attention_maps, dataset_attention_distances
from medtrans.analysis.explain import cam_layer, grad_cam, heatmap_overlay, title_height, titled
from medtrans.apis import init_model, load_config, model_inputs
from medtrans.testing import write_images

RESNET = 'configs/classification/resnet18/resnet18_in1k_1xb64_plateau_aptos2019-224.py'
DEIT = 'configs/classification/deit-s/deit-s_in1k_1xb64_plateau_aptos2019-224.py'


def _model(config, size=64, seed=0):
    torch.manual_seed(seed)
    cfg = load_config(config, pretrained=None, img_size=size)
    return init_model(cfg)


def _reference_grad_cam(model, inputs, layer, classes):
    """Grad-CAM by hand: ReLU of the activations weighted by their mean gradient, scaled to
    [0, 1] per image and resized to the input as the grad-cam package does."""
    store = {}
    handle = layer.register_forward_hook(lambda m, a, out: store.__setitem__('act', out))
    logits = model(inputs, mode='tensor')
    handle.remove()
    act = store['act']
    grads = torch.autograd.grad(logits[torch.arange(len(classes)), classes].sum(), act)[0]
    cams = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * act).sum(dim=1)).detach().numpy()
    out = []
    for cam in cams:
        cam = cam - cam.min()
        cam = cam / (1e-7 + cam.max())
        out.append(cv2.resize(cam, inputs.shape[-2:][::-1]))
    return np.stack(out)


def test_grad_cam_of_a_shipped_cnn_config_is_grad_cam():
    model = _model(RESNET)
    inputs = torch.randn(2, 3, 64, 64)
    layer = cam_layer(model)
    assert layer is model.backbone.inner.layer4
    classes = [3, 1]
    maps = grad_cam(model, inputs, classes=classes)
    assert maps.shape == (2, 64, 64) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, _reference_grad_cam(model, inputs, layer, classes),
                               atol=1e-5)
    # Without classes: the predicted ones.
    predicted = model(inputs, mode='tensor').argmax(dim=1).tolist()
    np.testing.assert_allclose(grad_cam(model, inputs),
                               _reference_grad_cam(model, inputs, layer, predicted), atol=1e-5)


def _checkpoint(model, path):
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return str(path)


def test_explain_tool_writes_the_figure_4_panels(repo_root, tmp_path):
    cnn = _checkpoint(_model(RESNET, size=224), tmp_path / 'cnn.pth')
    vit = _checkpoint(_model(DEIT, size=224), tmp_path / 'vit.pth')
    images = write_images(str(tmp_path / 'images'), ['a.png', 'b.png'], seed=0)
    out = tmp_path / 'out'
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/explain.py', str(tmp_path / 'images'), '--out-dir',
         str(out), '--cnn', RESNET, cnn, '--vit', DEIT, vit],
        cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ['a.png', 'a_heads.png', 'b.png',
                                                     'b_heads.png']
    cnn_model = init_model(load_config(RESNET, pretrained=None, img_size=224), cnn)
    vit_model = init_model(load_config(DEIT, pretrained=None, img_size=224), vit)
    top = title_height(224)
    titles = ['image', f'Grad-CAM ({cnn_model.backbone.arch})', 'attention (mean of 6 heads)',
              'top 50% of attention']
    for stem, path in zip(('a', 'b'), images):
        panels = cv2.imread(str(out / f'{stem}.png'))
        heads = cv2.imread(str(out / f'{stem}_heads.png'))
        # Image, Grad-CAM, attention, attention mass at the 224 test size; DeiT-S has 6 heads;
        # each panel under its title.
        assert panels.shape == (top + 224, 4 * 224, 3)
        assert heads.shape == (top + 224, 6 * 224, 3)
        inputs, batch = next(model_inputs(cnn_model, [path]))
        shown = batch['inputs'][0].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(panels[:, :224], titled(shown, 'image'))  # as the model saw
        np.testing.assert_array_equal(panels[top:, 224:448],
                                      heatmap_overlay(shown, grad_cam(cnn_model, inputs)[0]))
        vit_inputs, _ = next(model_inputs(vit_model, [path]))
        mean = cls_attention_maps(vit_model.backbone, vit_inputs)[0].mean(dim=0)
        np.testing.assert_array_equal(panels[top:, 448:672],
                                      heatmap_overlay(shown, mean.numpy()))
        for i, title in enumerate(titles):
            np.testing.assert_array_equal(panels[:top, i * 224:(i + 1) * 224],
                                          titled(shown, title)[:top])
        for i in range(6):
            np.testing.assert_array_equal(heads[:top, i * 224:(i + 1) * 224],
                                          titled(shown, f'head {i + 1}')[:top])
    # The titles are drawn, and differ.
    bands = [titled(shown, title)[:top] for title in titles]
    assert all((band < 128).any() for band in bands)
    assert len({band.tobytes() for band in bands}) == 4


@pytest.fixture
def aptos(tmp_path):
    from medtrans.registry import DATASETS
    from medtrans.testing import write_synthetic_layout
    root = tmp_path / 'aptos'
    write_synthetic_layout(DATASETS.get('APTOS2019Dataset'), str(root))
    return root


def test_attention_distance_tool_writes_the_splits_average(repo_root, tmp_path, aptos):
    model = _model(DEIT, size=32)
    checkpoint = _checkpoint(model, tmp_path / 'vit.pth')
    work_dir, out = tmp_path / 'work', tmp_path / 'out'
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/attention_distance.py', DEIT, checkpoint,
         '--data-root', str(aptos), '--img-size', '32', '--pretrained', 'none',
         '--work-dir', str(work_dir), '--split', 'test', '--num-images', '50',
         '--batch-size', '1', '--out-dir', str(out)],
        cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(out / 'attention_distance.csv')))
    assert len(rows) == 12 * 6
    assert (out / 'attention_distance.png').stat().st_size > 1000

    # The same average in this process, over the same images: the test split, which the tool
    # recorded in the work dir.
    cfg = load_config(str(repo_root / DEIT), data_root=str(aptos), pretrained=None,
                      img_size=32)
    loader = Runner.build_dataloader(
        dict(cfg.test_dataloader, batch_size=1, num_workers=0, persistent_workers=False))
    record = json.loads((work_dir / 'splits' / 'aptos2019_seed0.json').read_text())
    assert record['splits']['test'] == [loader.dataset.get_data_info(i)['sample_id']
                                        for i in range(len(loader.dataset))]
    expected, seen = dataset_attention_distances(model, loader, 50, progress=False)
    assert seen == len(loader.dataset)
    got = torch.tensor([float(r['distance']) for r in rows]).reshape(12, 6)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
