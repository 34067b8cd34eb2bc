# `make demo`: the headline model trained from random init on a synthetic lesion set written in
# the ISIC 2018 layout (tools/misc/make_demo_data.py), shrunk to run on 2 CPU cores in minutes.
# The data folder, the weight file (none: random init) and the input size are retargeted in one
# place (docs/configs.md); only the schedule differs otherwise.
_base_ = ['../deeplab3_deit_s_isic2018.py']
retarget = dict(data_root='data/demo_isic2018', pretrained=None, img_size=128)
model = dict(backbone=dict(drop_path_rate=0.0))
train_dataloader = dict(batch_size=8, num_workers=1)
val_dataloader = dict(num_workers=1)
test_dataloader = dict(num_workers=1, dataset=dict(split='val'))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=50),
    dict(
        type='ReduceOnPlateauLR', monitor='IoU', rule='greater', factor=0.1, patience=2,
        min_value=1e-6, by_epoch=True),
]
train_cfg = dict(max_iters=300, val_interval=100)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=100))
