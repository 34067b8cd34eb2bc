"""DeiT backbone: timm ImageNet weights give timm's features, at any input size and patch 8."""
import math

import pytest
import timm
import torch
from safetensors.torch import save_file

from medtrans.fileio import UnsafeCheckpointError
from medtrans.models import DeiT
from medtrans.registry import MODELS

TOL = dict(atol=1e-5, rtol=0)


class _Payload:
    """A custom class: pickling an instance of it makes a checkpoint unsafe to load."""



def _loaded(**kwargs) -> DeiT:
    """Build a DeiT and initialise it as the Runner does (which reads ``pretrained``)."""
    model = DeiT(**kwargs)
    model.init_weights()
    return model

@pytest.fixture(scope='module')
def small_weights(tmp_path_factory):
    """A random timm DeiT-S with its ImageNet classifier, saved as .pth and .safetensors."""
    torch.manual_seed(0)
    model = timm.create_model('deit_small_patch16_224', pretrained=False, num_classes=1000)
    state_dict = model.state_dict()
    folder = tmp_path_factory.mktemp('deit_small')
    paths = dict(pth=folder / 'deit_small.pth', safetensors=folder / 'deit_small.safetensors')
    torch.save(state_dict, paths['pth'])
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(paths['safetensors']))
    return dict(state_dict=state_dict, **{k: str(v) for k, v in paths.items()})


@pytest.fixture(scope='module')
def tiny_weights(tmp_path_factory):
    """A random timm DeiT-T state dict as .pth, for the tests where the width does not matter."""
    torch.manual_seed(0)
    model = timm.create_model('deit_tiny_patch16_224', pretrained=False, num_classes=1000)
    path = tmp_path_factory.mktemp('deit_tiny') / 'deit_tiny.pth'
    torch.save(model.state_dict(), path)
    return str(path)


def timm_reference(path: str, name: str = 'deit_small_patch16_224', **kwargs) -> torch.nn.Module:
    """timm's own model with the same weights, loaded by timm's own local-file loader."""
    return timm.create_model(
        name, pretrained=True, pretrained_cfg_overlay=dict(file=path),
        num_classes=0, dynamic_img_size=True, **kwargs).eval()


@pytest.fixture(scope='module')
def small_model(small_weights):
    return _loaded(arch='deit-small', pretrained=small_weights['pth']).eval()


@pytest.fixture(scope='module')
def small_reference(small_weights):
    return timm_reference(small_weights['pth'])


def timm_features(model, x):
    """timm's normalised tokens as (CLS (B, C), patch map (B, C, h, w))."""
    with torch.no_grad():
        tokens = model.forward_features(x)
        cls = model.forward_head(tokens, pre_logits=True)
    h, w = model.patch_embed.dynamic_feat_size(x.shape[-2:])
    patch_map = tokens[:, 1:].reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2)
    return cls, patch_map


def test_imagenet_weights_match_timm_at_224(small_model, small_reference):
    x = torch.randn(2, 3, 224, 224)
    ref_cls, ref_map = timm_features(small_reference, x)
    with torch.no_grad():
        outs = small_model(x)
        cls = small_model.forward_embedding(x)
    assert len(outs) == 1
    patch_map, out_cls = outs[0]
    assert patch_map.shape == (2, 384, 14, 14)
    torch.testing.assert_close(cls, ref_cls, **TOL)
    torch.testing.assert_close(out_cls, ref_cls, **TOL)
    torch.testing.assert_close(patch_map, ref_map, **TOL)


def test_safetensors_loads_the_same_weights(small_weights, small_model):
    model = _loaded(arch='deit-small', pretrained=small_weights['safetensors'])
    expected = small_model.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key


@pytest.mark.parametrize('size', [(512, 512), (96, 160)])
def test_other_input_sizes_match_timm_dynamic_img_size(small_model, small_reference, size):
    x = torch.randn(1, 3, *size)
    ref_cls, ref_map = timm_features(small_reference, x)
    with torch.no_grad():
        patch_map, cls = small_model(x)[0]
    assert patch_map.shape == (1, 384, size[0] // 16, size[1] // 16)
    torch.testing.assert_close(cls, ref_cls, **TOL)
    torch.testing.assert_close(patch_map, ref_map, **TOL)


def test_img_size_resamples_position_embeddings_as_timm(tiny_weights):
    size = (96, 160)  # non-square: a 6x10 grid from the checkpoint's 14x14
    model = _loaded(arch='deit-tiny', img_size=size, pretrained=tiny_weights).eval()
    reference = timm_reference(tiny_weights, 'deit_tiny_patch16_224', img_size=size)
    assert model.vit.pos_embed.shape == (1, 1 + 6 * 10, 192)
    torch.testing.assert_close(model.vit.pos_embed, reference.pos_embed, **TOL)
    x = torch.randn(1, 3, *size)
    ref_cls, ref_map = timm_features(reference, x)
    with torch.no_grad():
        patch_map, cls = model(x)[0]
    torch.testing.assert_close(cls, ref_cls, **TOL)
    torch.testing.assert_close(patch_map, ref_map, **TOL)


def test_patch8_from_patch16_weights_matches_timm(tiny_weights):
    model = _loaded(arch='deit-tiny', patch_size=8, pretrained=tiny_weights).eval()
    reference = timm_reference(tiny_weights, 'deit_tiny_patch16_224', patch_size=8)
    assert model.vit.patch_embed.proj.weight.shape == (192, 3, 8, 8)
    assert model.vit.pos_embed.shape == (1, 1 + 28 * 28, 192)
    torch.testing.assert_close(
        model.vit.patch_embed.proj.weight, reference.patch_embed.proj.weight, **TOL)
    torch.testing.assert_close(model.vit.pos_embed, reference.pos_embed, **TOL)
    x = torch.randn(1, 3, 64, 96)
    ref_cls, ref_map = timm_features(reference, x)
    with torch.no_grad():
        patch_map, cls = model(x)[0]
    assert patch_map.shape == (1, 192, 8, 12)
    torch.testing.assert_close(cls, ref_cls, **TOL)
    torch.testing.assert_close(patch_map, ref_map, **TOL)


def test_official_deit_release_layout_loads(small_weights, tmp_path):
    # The facebookresearch/deit .pth files wrap the state dict under 'model'.
    path = tmp_path / 'deit_small_official.pth'
    torch.save({'model': small_weights['state_dict']}, path)
    model = _loaded(arch='deit-small', pretrained=str(path))
    torch.testing.assert_close(
        model.vit.cls_token, small_weights['state_dict']['cls_token'], atol=0, rtol=0)


def test_weights_load_in_init_weights_once(small_weights, tmp_path):
    # Building reads nothing (a config builds without the file, e.g. to test a checkpoint);
    # init_weights(), which the Runner calls before training, loads the file.
    assert DeiT(arch='deit-small', pretrained=str(tmp_path / 'absent.pth')) is not None
    model = _loaded(arch='deit-small', pretrained=small_weights['pth'])
    torch.testing.assert_close(
        model.vit.cls_token, small_weights['state_dict']['cls_token'], atol=0, rtol=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.init_weights()  # a second call must not re-initialise or reload
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_out_indices_and_final_norm_follow_timm_intermediates():
    torch.manual_seed(0)
    model = DeiT(arch='deit-tiny', out_indices=(-1, 2), init='timm').eval()
    assert model.out_indices == (2, 11)
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        outs = model(x)
        final, intermediates = model.vit.forward_intermediates(
            x, indices=[2, 11], return_prefix_tokens=True)
    assert len(outs) == 2
    # Block 2 is returned as it leaves the block; the last block after the final norm.
    torch.testing.assert_close(outs[0][0], intermediates[0][0], **TOL)
    torch.testing.assert_close(outs[0][1], intermediates[0][1][:, 0], **TOL)
    torch.testing.assert_close(outs[1][1], final[:, 0], **TOL)
    torch.testing.assert_close(outs[1][0], final[:, 1:].reshape(1, 2, 3, 192).permute(0, 3, 1, 2),
                               **TOL)


def test_final_norm_off_returns_raw_last_block_and_ignores_checkpoint_norm(
        small_weights, small_reference):
    model = _loaded(arch='deit-small', final_norm=False, output_cls_token=False,
                    pretrained=small_weights['pth']).eval()
    assert 'norm.weight' not in model.vit.state_dict()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        (patch_map, ) = model(x)
        cls = model.forward_embedding(x)
        _, (raw_last, ) = small_reference.forward_intermediates(
            x, indices=[11], return_prefix_tokens=True)
    assert isinstance(patch_map, torch.Tensor)
    torch.testing.assert_close(patch_map, raw_last[0], **TOL)
    torch.testing.assert_close(cls, raw_last[1][:, 0], **TOL)


def test_missing_weight_file_names_path_and_field(tmp_path):
    path = tmp_path / 'nowhere' / 'deit_small.pth'
    with pytest.raises(FileNotFoundError, match='pretrained') as info:
        _loaded(arch='deit-tiny', pretrained=str(path))
    assert str(path) in str(info.value)


def test_unexpected_and_missing_keys_are_errors(small_weights, tmp_path):
    state_dict = dict(small_weights['state_dict'])
    state_dict['blocks.0.extra_scale'] = torch.ones(384)
    del state_dict['blocks.3.mlp.fc1.bias']
    path = tmp_path / 'extra.pth'
    torch.save(state_dict, path)
    with pytest.raises(ValueError, match='blocks.0.extra_scale') as info:
        _loaded(arch='deit-small', pretrained=str(path))
    assert 'blocks.3.mlp.fc1.bias' in str(info.value)
    assert str(path) in str(info.value)


def test_weights_of_another_arch_are_an_error(small_weights):
    with pytest.raises(ValueError, match=r'shape mismatches: .*blocks\.0\.attn\.qkv\.weight'):
        _loaded(arch='deit-tiny', pretrained=small_weights['pth'])


def test_pickled_object_checkpoint_is_refused(small_weights, tmp_path):
    path = tmp_path / 'with_object.pth'
    torch.save({'state_dict': small_weights['state_dict'], 'meta': _Payload()}, path)
    with pytest.raises(UnsafeCheckpointError):
        _loaded(arch='deit-tiny', pretrained=str(path))


def _std(t: torch.Tensor) -> float:
    return t.detach().float().std().item()


def test_kaiming_init_is_he_normal_fan_in_and_differs_from_timm():
    torch.manual_seed(0)
    kaiming = DeiT(arch='deit-tiny', init='kaiming').vit
    timm_init = DeiT(arch='deit-tiny', init='timm').vit
    layers = {
        'patch_embed.proj': (kaiming.patch_embed.proj, timm_init.patch_embed.proj),
        'blocks.0.attn.qkv': (kaiming.blocks[0].attn.qkv, timm_init.blocks[0].attn.qkv),
        'blocks.5.mlp.fc2': (kaiming.blocks[5].mlp.fc2, timm_init.blocks[5].mlp.fc2),
    }
    for name, (ours, theirs) in layers.items():
        fan_in = ours.weight[0].numel()
        expected = math.sqrt(2.0 / fan_in)
        assert _std(ours.weight) == pytest.approx(expected, rel=0.05), name
        assert abs(_std(theirs.weight) - expected) > 0.2 * expected, name
        assert not ours.bias.any(), name
    for module in kaiming.modules():
        if isinstance(module, torch.nn.LayerNorm):
            assert torch.all(module.weight == 1) and not module.bias.any()
    assert _std(kaiming.pos_embed) == pytest.approx(0.02, rel=0.05)
    assert _std(kaiming.cls_token) == pytest.approx(0.02, rel=0.25)
    assert _std(timm_init.cls_token) < 1e-4  # timm starts the CLS token near zero


def test_kaiming_init_sets_every_parameter():
    # timm's own init is skipped for speed; the same seed must still give the same weights,
    # so nothing is left from uninitialised memory.
    torch.manual_seed(1)
    first = DeiT(arch='deit-tiny', init='kaiming').state_dict()
    torch.manual_seed(1)
    second = DeiT(arch='deit-tiny', init='kaiming').state_dict()
    for key, value in first.items():
        assert torch.equal(value, second[key]), key


def test_builds_from_registry_with_drop_path():
    model = MODELS.build(dict(type='DeiT', arch='deit-tiny', drop_path_rate=0.1, init='timm'))
    assert isinstance(model, DeiT)
    assert model.embed_dims == 192
    assert model.vit.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)


def test_arch_dict_is_timm_vision_transformer_of_that_size(tmp_path):
    """A DeiT of another size (mmpretrain's arch keys) is timm's ViT with those sizes."""
    torch.manual_seed(0)
    reference = timm.create_model('deit_tiny_patch16_224', pretrained=False, num_classes=0,
                                  embed_dim=64, depth=3, num_heads=4, patch_size=8,
                                  img_size=32, dynamic_img_size=True).eval()
    path = tmp_path / 'custom.pth'
    torch.save(reference.state_dict(), path)
    model = _loaded(arch=dict(embed_dims=64, num_layers=3, num_heads=4), patch_size=8,
                    img_size=32, pretrained=str(path), out_type='embedding').eval()
    assert (model.arch, model.embed_dims, model.num_layers) == (
        'deit-embed_dims64-num_layers3-num_heads4', 64, 3)
    assert model.vit.blocks[0].attn.num_heads == 4
    x = torch.randn(2, 3, 48, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], timm_features(reference, x)[0], **TOL)


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='deit-large'), 'arch'),
    (dict(arch=dict(embed_dims=64, num_layers=2)), 'exactly'),
    (dict(arch=dict(embed_dims=64, num_layers=2, num_heads=3)), 'multiple of num_heads'),
    (dict(arch=dict(embed_dims=64, num_layers=0, num_heads=4)), 'positive int'),
    (dict(arch='deit-tiny', patch_size=32), 'patch_size'),
    (dict(arch='deit-tiny', out_indices=(12, )), 'out_indices'),
    (dict(arch='deit-tiny', out_indices=(11, -1)), 'twice'),
    (dict(arch='deit-tiny', init='xavier'), 'init'),
])
def test_invalid_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeiT(**kwargs)


def test_input_not_multiple_of_patch_size_is_an_error():
    model = DeiT(arch='deit-tiny', init='timm')
    with pytest.raises(ValueError, match='multiple of the patch size'):
        model(torch.randn(1, 3, 40, 32))


@pytest.mark.parametrize('arch,patch_size,size', [('deit-small', 16, 224),
                                                  ('deit-small', 16, 512),
                                                  ('deit-small', 8, 224)])
def test_every_block_calls_fused_attention_without_mask_or_causal_flag(arch, patch_size, size,
                                                                       monkeypatch):
    # torch's scaled_dot_product_attention picks the flash / memory-efficient kernels on GPUs
    # when it gets no mask and no causal flag; timm's DeiT must call it once per block so.
    calls = []
    fused = torch.nn.functional.scaled_dot_product_attention

    def counting(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kwargs):
        calls.append((tuple(q.shape), attn_mask, is_causal, dropout_p))
        return fused(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                     **kwargs)

    monkeypatch.setattr(torch.nn.functional, 'scaled_dot_product_attention', counting)
    model = DeiT(arch=arch, patch_size=patch_size).eval()
    with torch.no_grad():
        model.forward_embedding(torch.randn(1, 3, size, size))
    tokens = 1 + (size // patch_size) ** 2
    assert calls == [((1, 6, tokens, 64), None, False, 0.0)] * 12
