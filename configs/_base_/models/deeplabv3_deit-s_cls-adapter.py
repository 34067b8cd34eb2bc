# DeepLabV3 with a DeiT-S encoder: the last block's patch tokens, with the CLS token fused into
# every position (ClsTokenAdapter, docs/models.md), feed mmseg's ASPP head. The mmseg parts are
# built in mmseg's scope so that their nested defaults resolve; medtrans parts carry a prefix.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512))
embed_dims = 384
model = dict(
    _scope_='mmseg',
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='medtrans.DeiT',
        arch='deit-small',
        patch_size=16,
        img_size=512,
        out_indices=(7, 11),
        drop_path_rate=0.1,
        pretrained=None),
    neck=dict(
        type='medtrans.ClsTokenAdapter',
        in_channels=embed_dims,
        fusion='concat',
        patch_size=16,
        output_stride=16),
    decode_head=dict(
        type='ASPPHead',
        in_channels=2 * embed_dims,
        in_index=-1,
        channels=256,
        dilations=(1, 6, 12, 18),
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         avg_non_ignore=True)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=2 * embed_dims,
        in_index=0,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4,
                         avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
