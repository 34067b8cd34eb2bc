"""DeiT + ClsTokenAdapter inside mmseg's EncoderDecoder with ASPP and FCN heads, from a config."""
import torch
from mmengine import ConfigDict
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from medtrans.models import ClsTokenAdapter, DeiT
from medtrans.registry import MODELS

EMBED = 192  # DeiT-T
NORM = dict(type='BN', requires_grad=True)


def deeplabv3_deit_cfg() -> ConfigDict:
    """The model part of a DeepLabV3-DeiT config, as a config file would write it."""
    return ConfigDict(
        _scope_='mmseg',  # mmseg's nested string defaults (losses, ...) resolve in its scope
        type='EncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            size=(64, 64),
            pad_val=0,
            seg_pad_val=255),
        backbone=dict(type='medtrans.DeiT', arch='deit-tiny', patch_size=16, img_size=64,
                      drop_path_rate=0.1),
        neck=dict(type='medtrans.ClsTokenAdapter', in_channels=EMBED, fusion='concat',
                  patch_size=16, output_stride=8, norm_cfg=NORM),
        decode_head=dict(
            type='ASPPHead',
            in_channels=2 * EMBED,  # concat fusion doubles the token width
            in_index=0,
            channels=64,
            dilations=(1, 6, 12, 18),
            dropout_ratio=0.1,
            num_classes=2,
            norm_cfg=NORM,
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        auxiliary_head=dict(
            type='FCNHead',
            in_channels=2 * EMBED,
            in_index=0,
            channels=32,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.1,
            num_classes=2,
            norm_cfg=NORM,
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def batch(n: int = 2, size: int = 64) -> dict:
    torch.manual_seed(0)
    inputs = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8) for _ in range(n)]
    samples = []
    for _ in range(n):
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             pad_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 2, (1, size, size)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_builds_from_config_and_trains_one_step():
    model = MODELS.build(deeplabv3_deit_cfg())
    assert isinstance(model.backbone, DeiT) and isinstance(model.neck, ClsTokenAdapter)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(batch(), training=True)
    losses = model(**data, mode='loss')
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses)
    total = losses['decode.loss_ce'] + losses['aux.loss_ce']
    assert torch.isfinite(total)
    total.backward()
    # The loss reaches the first layers of the encoder, through the fused CLS token too.
    assert model.backbone.vit.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.backbone.vit.cls_token.grad.abs().sum() > 0


def test_predicts_full_resolution_masks():
    model = MODELS.build(deeplabv3_deit_cfg()).eval()
    data = model.data_preprocessor(batch(n=1), training=False)
    with torch.no_grad():
        logits = model(data['inputs'], mode='tensor')
        (result, ) = model(**data, mode='predict')
    assert logits.shape == (1, 2, 8, 8)  # the head's output, at output stride 8
    assert result.pred_sem_seg.data.shape == (1, 64, 64)
