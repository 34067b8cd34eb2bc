# The demo config made tiny for end-to-end tests: DeiT-Ti, 64x64 crops, a handful of iterations.
_base_ = ['../../../configs/demo/deeplab3_deit_s_demo_isic2018.py']
crop_size = (64, 64)
train_pipeline = [
    dict(type='LoadImageStrict'),
    dict(type='LoadBinaryMask'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmseg.PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageStrict'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadBinaryMask'),
    dict(type='mmseg.PackSegInputs'),
]
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='deit-tiny', img_size=crop_size[0], out_indices=(5, 11)),
    neck=dict(in_channels=192),
    decode_head=dict(in_channels=384, channels=32),
    auxiliary_head=dict(in_channels=384, channels=16))
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
train_cfg = dict(max_iters=6, val_interval=3)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3))
