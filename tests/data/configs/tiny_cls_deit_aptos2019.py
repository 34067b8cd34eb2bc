# The APTOS 2019 DeiT random-init cell made tiny for end-to-end tests: DeiT-T at 32x32, batch 2.
_base_ = ['../../../configs/classification/deit-s/deit-s_random_1xb64_plateau_aptos2019-224.py']
train_pipeline = [
    dict(type='LoadImageStrict'),
    dict(type='Resize', scale=(36, 36), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(
        type='RandomApply',
        prob=0.8,
        transforms=[
            dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.1, hue=0.1)
        ]),
    dict(type='mmpretrain.RandomResizedCrop', scale=32, crop_ratio_range=(0.8, 1.2)),
    dict(type='mmpretrain.PackInputs', meta_keys=_base_.meta_keys),
]
test_pipeline = [
    dict(type='LoadImageStrict'),
    dict(type='Resize', scale=(36, 36), keep_ratio=False),
    dict(type='mmpretrain.CenterCrop', crop_size=32),
    dict(type='mmpretrain.PackInputs', meta_keys=_base_.meta_keys),
]
model = dict(backbone=dict(arch='deit-tiny'), head=dict(in_channels=192))
train_dataloader = dict(batch_size=2, num_workers=1, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=2, num_workers=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(batch_size=2, num_workers=1, dataset=dict(pipeline=test_pipeline))
train_cfg = dict(max_iters=6, val_interval=3)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3))
