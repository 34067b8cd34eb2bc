# `make demo`: the headline model trained from random init on a synthetic lesion set written in
# the ISIC 2018 layout (tools/misc/make_demo_data.py), shrunk to run on 2 CPU cores in minutes:
# its data folder, random init, 128x128 inputs and a short schedule; the recipe is otherwise the
# headline's.
_base_ = ['../deeplab3_deit_s_isic2018.py']
data_root = 'data/demo_isic2018'
crop_size = (128, 128)
# The headline's pipelines with the sizes set to crop_size (load, load mask | resizes and crop |
# flips, colour jitter, packing).
train_pipeline = _base_.train_pipeline[:2] + [
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.8, 1.2), keep_ratio=True),
    dict(type='mmseg.RandomCrop', crop_size=crop_size),
] + _base_.train_pipeline[5:]
test_pipeline = _base_.test_pipeline[:1] + [
    dict(type='Resize', scale=crop_size, keep_ratio=False),
] + _base_.test_pipeline[2:]
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=crop_size[0], drop_path_rate=0.0, pretrained=None))
train_dataloader = dict(
    batch_size=8, num_workers=1, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, split='val', pipeline=test_pipeline))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=50),
    dict(
        type='AutoReduceOnPlateauLR', monitor='auto', rule='greater', factor=0.1, patience=2,
        min_value=1e-6, by_epoch=True),
]
train_cfg = dict(max_iters=300, val_interval=100)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=100))
