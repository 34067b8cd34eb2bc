"""Every backbone x initialisation: one embedding interface, timm's weights and features exactly.

A "timm ImageNet file" here is ``timm.create_model(name).state_dict()`` with random weights,
the same format as the real files of ``tools/misc/download_timm_weights.py``.
"""
import os
import shutil
from typing import Dict, NamedTuple, Optional

import pytest
import timm
import torch
from mmengine import ConfigDict
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample

from medtrans.models import (
    DeiT,
    EmbeddingBackbone,
    TimmInceptionV3,
    TimmResNet,
    TimmSwinTransformer,
)
from medtrans.models.utils import (
    MANIFEST_NAME,
    read_state_dict,
    save_state_dict,
    sha256_file,
    update_manifest,
)
from medtrans.registry import MODELS

DEIT_TOL = dict(atol=1e-5, rtol=0)


class Spec(NamedTuple):
    backbone: Dict  # medtrans config of the backbone
    timm_name: str  # timm architecture of its ImageNet file
    width: int  # documented embedding width
    size: int  # input size of the test
    suffix: str = '.safetensors'
    timm_kwargs: Optional[Dict] = None  # for timm's reference model
    compare: bool = True  # whether timm's model of the file computes the same embedding
    # All three initialisations, each its own build; big models are built once, from the timm
    # file: the Kaiming and export paths are the same code as for their smaller siblings.
    every_init: bool = True


_SWIN = dict(dynamic_img_size=True)
_VIT = dict(dynamic_img_size=True)
SPECS = {
    'resnet18': Spec(dict(type='TimmResNet', depth=18), 'resnet18', 512, 64, '.pth'),
    'resnet50': Spec(dict(type='TimmResNet', depth=50), 'resnet50', 2048, 64),
    'resnet152': Spec(dict(type='TimmResNet', depth=152), 'resnet152', 2048, 64,
                      every_init=False),
    'inception_v3': Spec(dict(type='TimmInceptionV3'), 'inception_v3', 2048, 75),
    'swin-tiny': Spec(dict(type='TimmSwinTransformer', arch='swin-tiny'),
                      'swin_tiny_patch4_window7_224', 768, 64, timm_kwargs=_SWIN),
    'deit-tiny': Spec(dict(type='DeiT', arch='deit-tiny'), 'deit_tiny_patch16_224', 192, 64,
                      '.pth', timm_kwargs=_VIT),
    'deit-small': Spec(dict(type='DeiT', arch='deit-small'), 'deit_small_patch16_224', 384, 64,
                       timm_kwargs=_VIT),
    'deit-base': Spec(dict(type='DeiT', arch='deit-base'), 'deit_base_patch16_224', 768, 64,
                      timm_kwargs=_VIT, every_init=False),
    # Patch 8 loads the patch-16 ImageNet file with a resampled kernel (compared with timm's
    # own loader in test_deit.py), so timm's patch-16 model is no reference here.
    'deit-tiny-p8': Spec(dict(type='DeiT', arch='deit-tiny', patch_size=8),
                         'deit_tiny_patch16_224', 192, 64, '.pth', _VIT, compare=False),
    'deit-small-p8': Spec(dict(type='DeiT', arch='deit-small', patch_size=8),
                          'deit_small_patch16_224', 384, 64, timm_kwargs=_VIT, compare=False),
    'deit-base-p8': Spec(dict(type='DeiT', arch='deit-base', patch_size=8),
                         'deit_base_patch16_224', 768, 64, timm_kwargs=_VIT, compare=False,
                         every_init=False),
}


def calibrate_batch_norm(model: torch.nn.Module, size: int) -> None:
    """Set every BatchNorm's running statistics to those of random inputs, as training leaves
    them in a real file: timm's random init leaves them at 0 and 1, and eval activations of the
    deep Inception-v3 then grow past float range (NaN, depending on the thread count)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, size, size))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()


class TimmFile(NamedTuple):
    path: str
    inputs: torch.Tensor
    embedding: torch.Tensor  # timm's forward_head(forward_features(x), pre_logits=True)


@pytest.fixture(scope='module')
def timm_file(tmp_path_factory):
    """Make (once per architecture and suffix) a random timm ImageNet file and timm's embedding."""
    cache = {}

    def make(spec: Spec) -> TimmFile:
        key = (spec.timm_name, spec.suffix)
        if key not in cache:
            torch.manual_seed(0)
            model = timm.create_model(spec.timm_name, pretrained=False,
                                      **(spec.timm_kwargs or {})).eval()
            # timm zero-initialises the last norm of each ResNet block, which would leave the
            # block's other weights without gradient in the train step.
            with torch.no_grad():
                for param in model.parameters():
                    param.add_(0.02 * torch.randn_like(param))
            calibrate_batch_norm(model, spec.size)
            path = str(tmp_path_factory.mktemp('timm') / f'{spec.timm_name}{spec.suffix}')
            save_state_dict(model.state_dict(), path)
            x = torch.randn(2, 3, spec.size, spec.size)
            with torch.no_grad():
                embedding = model.forward_head(model.forward_features(x), pre_logits=True)
            cache[key] = TimmFile(path, x, embedding)
        return cache[key]

    yield make
    for made in cache.values():  # up to 350 MB each: not left for pytest's kept temp dirs
        os.remove(made.path)


def classifier(backbone: Dict, width: int, **kwargs) -> torch.nn.Module:
    """mmpretrain's ImageClassifier on the backbone's embedding, built as a config builds it."""
    cfg = ConfigDict(
        _scope_='mmpretrain',
        type='ImageClassifier',
        backbone=dict(backbone, type=f'medtrans.{backbone["type"]}', out_type='embedding',
                      **kwargs),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=width))
    model = MMPRETRAIN_MODELS.build(cfg)
    model.init_weights()  # as the Runner does before training: reads `pretrained`
    return model


def train_step(model: torch.nn.Module, size: int) -> None:
    """mmpretrain's training forward and backward; every backbone weight must get a gradient."""
    generator = torch.Generator().manual_seed(0)
    data = dict(
        inputs=[torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator)
                for _ in range(2)],
        data_samples=[DataSample().set_gt_label(0), DataSample().set_gt_label(2)])
    model.train()
    # The steps of BaseModel.train_step, without the optimizer update, so the gradients remain.
    data = model.data_preprocessor(data, True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(loss)
    loss.backward()
    without = [k for k, v in model.backbone.named_parameters()
               if v.grad is None or not v.grad.any() or not torch.isfinite(v.grad).all()]
    assert not without
    # A step of 1e-4 per weight, so that the export differs from the file. Not an SGD step: the
    # gradients of these random networks reach 1e5, and SGD's step then overflowed the deep
    # Inception-v3's activations in eval (NaN, on some CPUs only).
    with torch.no_grad():
        for param in model.parameters():
            if param.grad is not None:
                param.sub_(1e-4 * param.grad.sign())


def backbone_weights(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The backbone's entries of a classifier's state dict, as a medtrans export holds them."""
    return {k: v for k, v in model.state_dict().items() if k.startswith('backbone.')}


def check_interface(model: torch.nn.Module, spec: Spec, x: torch.Tensor) -> None:
    """The documented width, and the head reads exactly the embedding (no neck)."""
    assert isinstance(model.backbone, EmbeddingBackbone)
    assert model.backbone.num_features == spec.width
    model.eval()
    with torch.no_grad():
        embedding = model.backbone.forward_embedding(x)
        assert embedding.shape == (2, spec.width)
        assert torch.equal(model.extract_feat(x, stage='pre_logits'), embedding)


@pytest.mark.parametrize('name', list(SPECS))
def test_every_init_builds_trains_and_gives_the_documented_embedding(name, timm_file, tmp_path):
    spec = SPECS[name]
    ref = timm_file(spec)
    x = ref.inputs

    if spec.every_init:  # 1. Kaiming (the paper's random initialisation).
        torch.manual_seed(0)
        model = classifier(spec.backbone, spec.width, init='kaiming')
        check_interface(model, spec, x)
        train_step(model, spec.size)
        del model

    # 2. A timm ImageNet file: no key missing or unexpected, timm's embedding.
    model = classifier(spec.backbone, spec.width, pretrained=ref.path)
    check_interface(model, spec, x)
    if spec.compare:
        with torch.no_grad():
            embedding = model.backbone.forward_embedding(x)
        if spec.backbone['type'] == 'DeiT':  # its own token loop, checked against timm's
            torch.testing.assert_close(embedding, ref.embedding, **DEIT_TOL)
        else:  # timm's own forward_features / forward_head
            assert torch.equal(embedding, ref.embedding)
    train_step(model, spec.size)
    if not spec.every_init:
        return

    # 3. The backbone weights of that (now trained) medtrans model, exported and reloaded.
    export = str(tmp_path / 'backbone.safetensors')
    exported = backbone_weights(model)
    save_state_dict(exported, export)
    del model
    model = classifier(spec.backbone, spec.width, pretrained=export)
    os.remove(export)
    reloaded = backbone_weights(model)
    assert reloaded.keys() == exported.keys()
    for key, value in exported.items():
        assert torch.equal(reloaded[key], value), key
    check_interface(model, spec, x)
    train_step(model, spec.size)


@pytest.fixture(scope='module')
def resnet18_file(timm_file):
    return timm_file(SPECS['resnet18'])


def _build(cfg: Dict, **kwargs) -> torch.nn.Module:
    model = MODELS.build(dict(cfg, **kwargs))
    model.init_weights()
    return model


# Feature levels of each family: channels, and strides where the input size divides evenly.
LEVELS = {
    'resnet18': ((64, 64, 128, 256, 512), (2, 4, 8, 16, 32)),
    'inception_v3': ((64, 192, 288, 768, 2048), None),
    'swin-tiny': ((96, 192, 384, 768), (4, 8, 16, 32)),
}


@pytest.fixture(scope='module')
def featmap_backbone(timm_file):
    """Build (once per family) the backbone from its timm file, returning every level."""
    cache = {}

    def make(name: str) -> torch.nn.Module:
        if name not in cache:
            spec = SPECS[name]
            num_levels = len(LEVELS[name][0])
            backbone = _build(spec.backbone, out_indices=tuple(range(-1, -num_levels - 1, -1)),
                              pretrained=timm_file(spec).path).eval()
            assert backbone.out_indices == tuple(range(num_levels))  # resolved and sorted
            cache[name] = backbone
        return cache[name]

    return make


@pytest.mark.parametrize('name', list(LEVELS))
def test_feature_levels_and_pooled_last_level_is_the_embedding(name, timm_file,
                                                                featmap_backbone):
    spec = SPECS[name]
    ref = timm_file(spec)
    backbone = featmap_backbone(name)
    channels, strides = LEVELS[name]
    with torch.no_grad():
        maps = backbone(ref.inputs)
    assert tuple(m.shape[1] for m in maps) == channels
    if strides is not None:
        assert tuple(spec.size // m.shape[-1] for m in maps) == strides
    # mmpretrain's GlobalAveragePooling neck on the 'featmap' output gives the embedding
    # (for Swin: the last stage after the final norm).
    neck = MMPRETRAIN_MODELS.build(dict(_scope_='mmpretrain', type='GlobalAveragePooling'))
    pooled = neck(maps)[-1]
    torch.testing.assert_close(pooled, ref.embedding, atol=1e-6, rtol=1e-5)


def test_swin_last_map_is_timm_features_after_final_norm(timm_file, featmap_backbone):
    spec = SPECS['swin-tiny']
    ref = timm_file(spec)
    reference = timm.create_model(spec.timm_name, pretrained=True, dynamic_img_size=True,
                                  pretrained_cfg_overlay=dict(file=ref.path)).eval()
    with torch.no_grad():
        last = featmap_backbone('swin-tiny')(ref.inputs)[-1]
        expected = reference.forward_features(ref.inputs).permute(0, 3, 1, 2)
    assert torch.equal(last, expected)


def test_inception_rejects_inputs_below_75_pixels(featmap_backbone):
    model = featmap_backbone('inception_v3')
    for forward in (model, model.forward_embedding):
        with pytest.raises(ValueError, match='at least 75x75'):
            forward(torch.randn(1, 3, 74, 80))


def test_medtrans_export_without_backbone_prefix_loads(resnet18_file, tmp_path):
    source = _build(SPECS['resnet18'].backbone, pretrained=resnet18_file.path)
    path = str(tmp_path / 'resnet18_backbone.pth')
    save_state_dict(source.state_dict(), path)  # keys 'timm_model.conv1.weight', ...
    model = _build(SPECS['resnet18'].backbone, pretrained=path)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_export_with_mixed_prefixes_names_the_keys(resnet18_file, tmp_path):
    source = _build(SPECS['resnet18'].backbone, init='timm')
    state_dict = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state_dict['head.fc.weight'] = torch.zeros(3, 512)  # a classifier's head left in the file
    path = str(tmp_path / 'with_head.safetensors')
    save_state_dict(state_dict, path)
    with pytest.raises(ValueError, match=r'these do not: head\.fc\.weight\. ') as info:
        _build(SPECS['resnet18'].backbone, pretrained=path)
    assert path in str(info.value)


@pytest.mark.parametrize('target, match', [
    (dict(type='TimmResNet', depth=50), r'missing keys: .*layer1\.0\.conv3\.weight'),
    (dict(type='TimmSwinTransformer'), r'unexpected keys: .*layer1\.0\.conv1\.weight'),
    (dict(type='DeiT', arch='deit-tiny'), r'missing keys: blocks\.0\.attn\.proj\.bias'),
])
def test_weights_of_another_architecture_are_an_error(target, match, resnet18_file):
    with pytest.raises(ValueError, match=match) as info:
        _build(target, pretrained=resnet18_file.path)
    assert resnet18_file.path in str(info.value)


def test_export_of_another_architecture_is_an_error(timm_file, tmp_path):
    small = _build(SPECS['deit-small'].backbone, init='timm')
    path = str(tmp_path / 'deit_small_backbone.safetensors')
    save_state_dict({f'backbone.{k}': v for k, v in small.state_dict().items()}, path)
    with pytest.raises(ValueError, match=r'shape mismatches: blocks\.0\.attn\.proj\.bias '
                       r'\(checkpoint \(384,\), model \(192,\)\)') as info:
        _build(SPECS['deit-tiny'].backbone, pretrained=path)
    assert path in str(info.value)


def test_torchvision_inception_file_with_aux_classifier_loads(tmp_path):
    # torchvision's inception_v3_google-*.pth (timm's tv_in1k source) holds AuxLogits.*.
    torch.manual_seed(0)
    with_aux = timm.create_model('inception_v3', pretrained=False, aux_logits=True).state_dict()
    assert any(k.startswith('AuxLogits.') for k in with_aux)
    path = str(tmp_path / 'inception_v3_google.pth')
    save_state_dict(with_aux, path)
    model = _build(SPECS['inception_v3'].backbone, pretrained=path)
    for key, value in model.timm_model.state_dict().items():
        assert torch.equal(value, with_aux[key]), key


def test_checksum_in_manifest_is_verified(resnet18_file, tmp_path):
    path = tmp_path / 'resnet18.tv_in1k.pth'
    shutil.copyfile(resnet18_file.path, path)
    update_manifest(str(tmp_path), {path.name: sha256_file(str(path))})
    model = _build(SPECS['resnet18'].backbone, pretrained=str(path)).eval()
    with torch.no_grad():
        assert torch.equal(model.forward_embedding(resnet18_file.inputs),
                           resnet18_file.embedding)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=MANIFEST_NAME) as info:
        read_state_dict(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize('cfg, timm_name, timm_kwargs', [
    (dict(type='TimmResNet', depth=18), 'resnet18', {}),
    (dict(type='TimmInceptionV3'), 'inception_v3', {}),
    (dict(type='TimmSwinTransformer'), 'swin_tiny_patch4_window7_224', _SWIN),
])
def test_timm_init_is_timms_own(cfg, timm_name, timm_kwargs):
    torch.manual_seed(3)
    ours = MODELS.build(dict(cfg, init='timm')).timm_model.state_dict()
    torch.manual_seed(3)
    theirs = timm.create_model(timm_name, pretrained=False, num_classes=0,
                               **timm_kwargs).state_dict()
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key


_WEIGHTED = (torch.nn.Conv2d, torch.nn.Linear)
_NORMS = (torch.nn.LayerNorm, torch.nn.BatchNorm2d)


@pytest.mark.parametrize('name', ['resnet18', 'inception_v3', 'swin-tiny', 'deit-tiny'])
def test_kaiming_init_covers_every_parameter(name):
    cfg = SPECS[name].backbone
    torch.manual_seed(5)
    model = MODELS.build(dict(cfg, init='kaiming'))
    checked = set()
    for module_name, module in model.named_modules():
        prefix = f'{module_name}.' if module_name else ''
        if isinstance(module, _WEIGHTED):
            weight = module.weight
            expected = (2.0 / weight[0].numel()) ** 0.5  # He et al.: N(0, 2 / fan_in)
            if weight.numel() >= 500:
                assert weight.std().item() == pytest.approx(expected, rel=0.15), module_name
            assert module.bias is None or not module.bias.any(), module_name
        elif isinstance(module, _NORMS):
            assert torch.all(module.weight == 1) and not module.bias.any(), module_name
        else:
            continue
        checked.update(prefix + n for n, _ in module.named_parameters(recurse=False))
    extras = {n: p for n, p in model.named_parameters() if n not in checked}
    # Beyond convolutions, linears and norms: ViT position embedding and CLS token, Swin's
    # relative position bias tables, all truncated normal with std 0.02.
    expected_extras = {'deit-tiny': {'vit.pos_embed', 'vit.cls_token'}}.get(name, set())
    if name == 'swin-tiny':
        expected_extras = {n for n in extras if n.endswith('relative_position_bias_table')}
        assert len(expected_extras) == 12
    assert set(extras) == expected_extras
    for key, value in extras.items():
        assert value.std().item() == pytest.approx(0.02, rel=0.3), key
    if name in ('swin-tiny', 'deit-tiny'):
        # timm's own initialisation is skipped for these: same seed, same weights, so nothing
        # is left from uninitialised memory.
        torch.manual_seed(5)
        again = MODELS.build(dict(cfg, init='kaiming')).state_dict()
        for key, value in model.state_dict().items():
            assert torch.equal(value, again[key]), key


def test_pretrained_is_read_by_init_weights_only(tmp_path):
    path = str(tmp_path / 'absent.safetensors')
    model = MODELS.build(dict(type='TimmResNet', depth=18, pretrained=path))  # builds
    with pytest.raises(FileNotFoundError, match='pretrained') as info:
        model.init_weights()
    assert path in str(info.value)


class _PluginBackbone(torch.nn.Module):
    """A third-party backbone that implements the interface without subclassing anything."""

    num_features = 8

    def forward_embedding(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :self.num_features]


def test_embedding_interface_is_structural():
    assert isinstance(_PluginBackbone(), EmbeddingBackbone)
    assert not isinstance(torch.nn.Conv2d(3, 8, 1), EmbeddingBackbone)
    for cls in (DeiT, TimmResNet, TimmInceptionV3, TimmSwinTransformer):
        assert hasattr(cls, 'forward_embedding')


@pytest.mark.parametrize('cfg, match', [
    (dict(type='TimmResNet', depth=34), 'depth'),
    (dict(type='TimmSwinTransformer', arch='swin-small'), 'arch'),
    (dict(type='TimmSwinTransformer', drop_path_rate=1.0), 'drop_path_rate'),
    (dict(type='TimmResNet', depth=18, out_type='logits'), 'out_type'),
    (dict(type='TimmResNet', depth=18, init='xavier'), 'init'),
    (dict(type='TimmResNet', depth=18, out_indices=(5, )), 'out_indices'),
    (dict(type='TimmResNet', depth=18, out_type='embedding', out_indices=(3, 4)), 'out_indices'),
    (dict(type='DeiT', arch='deit-tiny', out_type='embedding', out_indices=(7, )),
     'out_indices'),
])
def test_invalid_arguments_are_named(cfg, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(cfg)


def test_config_style_classifier_with_multilabel_head_reads_the_embedding():
    # As a config writes it: mmpretrain's part in its own scope, the backbone with the prefix.
    model = MODELS.build(ConfigDict(
        _scope_='mmpretrain',
        type='ImageClassifier',
        backbone=dict(type='medtrans.TimmResNet', depth=18, out_type='embedding', init='timm'),
        head=dict(type='MultiLabelLinearClsHead', num_classes=14, in_channels=512))).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        embedding = model.backbone.forward_embedding(x)
        torch.testing.assert_close(model.head(model.extract_feat(x)),
                                   model.head.fc(embedding), atol=0, rtol=0)


@pytest.mark.parametrize('backbone', [dict(type='TimmResNet', depth=18),
                                      dict(type='TimmInceptionV3')])
def test_channels_last_keeps_the_results_and_the_layout(backbone, tmp_path):
    torch.manual_seed(0)
    plain = MODELS.build(backbone).eval()
    path = str(tmp_path / 'weights.safetensors')
    save_state_dict(plain.inner.state_dict(), path)
    nhwc = MODELS.build(dict(backbone, channels_last=True, pretrained=path))
    nhwc.init_weights()  # loads the same weights into the channels-last tensors
    nhwc.eval()
    convs = [m.weight for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    x = torch.randn(2, 3, 80, 80)
    with torch.no_grad():
        torch.testing.assert_close(nhwc.forward_embedding(x), plain.forward_embedding(x),
                                   atol=1e-4, rtol=1e-4)
        maps = nhwc(x)
    assert maps[-1].is_contiguous(memory_format=torch.channels_last)
