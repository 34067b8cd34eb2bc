# DINO long enough to learn, for tests/test_tools/test_dino_learns.py: the tiny DINO of
# tiny_dino_deit_isic2018.py (its views) with a 4-block DeiT of width 64 on 8-pixel patches, on
# 32x32 images of a folder-per-class tree (data_root set by the test), half of them for
# training: 50 epochs of 12 batches of 32. Sharper teacher (temperature 0.02 throughout) and a
# higher LR than the study's settings, which are tuned for 300 epochs (docs/dino.md).
_base_ = ['./tiny_dino_deit_isic2018.py']
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=64, num_layers=4, num_heads=4), patch_size=8),
    head=dict(out_channels=256, hidden_channels=128, bottleneck_channels=64))
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='CustomClsDataset', data_root='data/stripes', split='train',
        split_fractions=dict(train=0.5, test=0.5)))
max_epochs = 50
train_cfg = dict(_delete_=True, type='IterBasedEpochsTrainLoop', max_epochs=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=3e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay', eta_min_ratio=10.0,
         by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
custom_hooks = [
    dict(type='MetricsJsonHook'),
    dict(type='SafeResumeHook'),
    dict(type='DINOHook', warmup_teacher_temp=0.02, teacher_temp=0.02,
         warmup_teacher_temp_epochs=1, momentum=0.99, freeze_last_layer_epochs=1, clip_grad=3.0),
    dict(type='SplitRecordHook'),
]
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=10000))
