# `make demo`: the headline model trained from random init on a synthetic lesion set written in
# the ISIC 2018 layout (tools/misc/make_demo_data.py), shrunk to run on 2 CPU cores in minutes.
# Only sizes, iteration counts and the weight file differ from the headline config.
_base_ = ['../deeplab3_deit_s_isic2018.py']
data_root = 'data/demo_isic2018'
crop_size = (128, 128)
pretrained = None
val_interval = 100
max_iters = 300

train_pipeline = [
    dict(type='LoadImageStrict'),
    dict(type='LoadBinaryMask'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.8, 1.2), keep_ratio=True),
    dict(type='mmseg.RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(
        type='RandomApply',
        prob=0.8,
        transforms=[
            dict(
                type='ColorJitter',
                brightness=0.2, contrast=0.2, saturation=0.1, hue=0.1)
        ]),
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
    backbone=dict(img_size=crop_size[0], pretrained=pretrained, drop_path_rate=0.0))
train_dataloader = dict(
    batch_size=8, num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, split='val', pipeline=test_pipeline))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=50),
    dict(
        type='ReduceOnPlateauLR', monitor='IoU', rule='greater', factor=0.1, patience=2,
        min_value=1e-6, by_epoch=True),
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=val_interval))
