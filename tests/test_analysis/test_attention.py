"""Attention analyses of ViT backbones: recorded weights, CLS maps, attention-mass masks and mean
attention distance, against timm's own (non-fused) attention and independent computations."""
import itertools
import math

import pytest
import torch
from mmengine.registry import DefaultScope

from medtrans.analysis.attention import (
    AttentionRecorder,
    attention_distances,
    cls_attention_maps,
    dataset_attention_distances,
    keep_attention_mass,
    mean_attention_distance,
)
from medtrans.registry import MODELS


def _deit(patch_size=16, arch='deit-tiny'):
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('medtrans'):
        model = MODELS.build(dict(type='DeiT', arch=arch, patch_size=patch_size))
    return model.eval()


def _timm_weights(backbone, images):
    """Each block's attention as timm's non-fused path computes it (its attn_drop input), and
    as AttentionRecorder records it in the same forward pass."""
    vit = backbone.inner
    weights, handles = {}, []
    for index, block in enumerate(vit.blocks):
        block.attn.fused_attn = False
        handles.append(block.attn.attn_drop.register_forward_hook(
            lambda m, args, out, index=index: weights.__setitem__(index, args[0].detach())))
    with AttentionRecorder(backbone) as recorder, torch.no_grad():
        backbone.forward_embedding(images)
    for handle, block in zip(handles, vit.blocks):
        handle.remove()
        block.attn.fused_attn = True
    return weights, recorder.weights


@pytest.mark.parametrize('patch_size,size', [(16, (64, 48)), (8, (40, 56))])
def test_recorded_weights_are_timms_and_the_fused_path_is_untouched(patch_size, size):
    backbone = _deit(patch_size)
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        plain = backbone.forward_embedding(images)
    reference, recorded = _timm_weights(backbone, images)
    assert sorted(recorded) == list(range(12))
    for index, weights in recorded.items():
        assert torch.equal(weights, reference[index]), index

    # On the fused path that training takes, the hooks change nothing the model computes.
    assert all(block.attn.fused_attn for block in backbone.inner.blocks)
    with AttentionRecorder(backbone, blocks=[-1]) as recorder, torch.no_grad():
        assert torch.equal(backbone.forward_embedding(images), plain)
    assert all(not block.attn._forward_pre_hooks for block in backbone.inner.blocks)  # removed
    last = recorder.weights[11]
    torch.testing.assert_close(last, reference[11], atol=1e-5, rtol=0)

    maps = cls_attention_maps(backbone, images)
    rows, cols = size[0] // patch_size, size[1] // patch_size
    assert maps.shape == (2, 3, rows, cols)
    assert torch.equal(maps.flatten(2), last[:, :, 0, 1:])


def test_a_vit_made_to_attend_one_patch_lights_that_patch():
    backbone = _deit()
    vit = backbone.inner
    target = 5  # patch (row 1, col 1) of a 4x4 grid
    # The last block's keys are a large multiple of a direction that only the target patch's
    # (normalised) token has, and the CLS query points the same way.
    with torch.no_grad():
        attn = vit.blocks[-1].attn
        dim = attn.qkv.in_features
        attn.qkv.weight.zero_()
        attn.qkv.bias.zero_()
        direction = torch.zeros(dim)
        direction[0] = 1.0
        attn.qkv.weight[:dim, 0] = 30.0   # q = 30 * x[0]
        attn.qkv.weight[dim:2 * dim, 0] = 30.0  # k = 30 * x[0]
    images = torch.zeros(1, 3, 64, 64)

    def mark(module, args):
        x = args[0].clone()
        x[:, :, 0] = -1.0
        x[:, 0, 0] = 1.0  # CLS
        x[:, 1 + target, 0] = 1.0
        return (x, )

    handle = vit.blocks[-1].attn.register_forward_pre_hook(mark)
    maps = cls_attention_maps(backbone, images)
    handle.remove()
    assert maps.shape == (1, 3, 4, 4)
    for head in range(3):
        assert maps[0, head].flatten().argmax().item() == target
        mask = keep_attention_mass(maps[0, head])
        assert mask.flatten().nonzero().flatten().tolist() == [target]


def test_keep_attention_mass_keeps_the_largest_values_holding_the_mass():
    maps = torch.tensor([[0.4, 0.05], [0.3, 0.25]])
    assert keep_attention_mass(maps, 0.5).tolist() == [[True, False], [True, False]]
    assert keep_attention_mass(maps, 0.4).tolist() == [[True, False], [False, False]]
    assert keep_attention_mass(maps, 1.0).all()
    with pytest.raises(ValueError, match='mass must lie in'):
        keep_attention_mass(maps, 0.0)


def _mean_pairwise_distance(rows, cols, patch):
    cells = list(itertools.product(range(rows), range(cols)))
    return sum(math.dist(a, b) for a in cells for b in cells) * patch / len(cells) ** 2


@pytest.mark.parametrize('rows,cols,patch', [(4, 4, 16), (3, 5, 8)])
def test_mean_attention_distance_of_uniform_and_identity_attention(rows, cols, patch):
    n = 1 + rows * cols
    uniform = torch.full((2, 3, n, n), 1.0 / n)
    distance = mean_attention_distance(uniform, (rows, cols), patch)
    expected = _mean_pairwise_distance(rows, cols, patch)
    torch.testing.assert_close(distance, torch.full((3, ), expected), atol=1e-4, rtol=0)
    identity = torch.eye(n).expand(2, 3, n, n)
    assert torch.equal(mean_attention_distance(identity, (rows, cols), patch), torch.zeros(3))


def test_attention_distances_of_a_deit_are_per_block_and_head():
    backbone = _deit(arch='deit-tiny')
    images = torch.randn(2, 3, 32, 48)
    distances = attention_distances(backbone, images)
    assert distances.shape == (12, 3)
    with AttentionRecorder(backbone) as recorder, torch.no_grad():
        backbone.forward_embedding(images)
    for block in range(12):
        assert torch.equal(distances[block],
                           mean_attention_distance(recorder.weights[block], (2, 3), 16))


def test_dataset_attention_distances_average_over_images_not_batches():
    from medtrans.apis import init_model, load_config
    torch.manual_seed(0)
    model = init_model(load_config(
        'configs/classification/deit-t/deit-t_in1k_1xb64_plateau_aptos2019-224.py',
        pretrained=None, img_size=32))
    images = [torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8) for _ in range(5)]
    batches = [dict(inputs=images[:2]), dict(inputs=images[2:4]), dict(inputs=images[4:])]
    got, seen = dataset_attention_distances(model, batches, num_images=3, progress=False)
    assert seen == 3  # the second batch is cut to one image
    inputs = model.data_preprocessor(dict(inputs=images[:3]), False)['inputs']
    torch.testing.assert_close(got, attention_distances(model.backbone, inputs),
                               atol=1e-5, rtol=0)  # float32 sums in another order
