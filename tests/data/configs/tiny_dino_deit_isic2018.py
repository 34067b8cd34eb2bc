# DINO made tiny for end-to-end tests: DeiT-Ti on global crops of 32 and local crops of 16 pixels,
# a narrow head, 12 iterations, on a synthetic ISIC 2018 tree (its training images; data_root is
# set by the test). The components are the shipped DINO configs'; only sizes and lengths change
# (epochs of 4 iterations: 18 images, batch 4; the length in iterations, by the base of the
# shipped loop).
_base_ = [
    '../../../configs/_base_/models/dino_deit-s.py',
    '../../../configs/_base_/schedules/dino_adamw_cos300e.py',
]
model = dict(
    backbone=dict(arch='deit-tiny', img_size=32),
    head=dict(out_channels=64, hidden_channels=32, bottleneck_channels=16))
flip_and_color_jitter = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandomApply',
        prob=0.8,
        transforms=[
            dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
        ]),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
]
# DINO's blur radius (0.1-2 pixels at 224) scaled to the crops of 32.
blur = dict(type='mmpretrain.GaussianBlur', magnitude_range=(0.1 * 32 / 224, 2.0 * 32 / 224),
            magnitude_std='inf')
views = dict(
    type='mmpretrain.MultiView',
    num_views=[1, 1, 2],
    transforms=[
        [
            dict(type='mmpretrain.RandomResizedCrop', scale=32, crop_ratio_range=(0.4, 1.0),
                 interpolation='bicubic', backend='pillow'),
            *flip_and_color_jitter, dict(blur, prob=1.0)
        ],
        [
            dict(type='mmpretrain.RandomResizedCrop', scale=32, crop_ratio_range=(0.4, 1.0),
                 interpolation='bicubic', backend='pillow'),
            *flip_and_color_jitter, dict(blur, prob=0.1),
            dict(type='mmpretrain.Solarize', thr=128, prob=0.2)
        ],
        [
            dict(type='mmpretrain.RandomResizedCrop', scale=16, crop_ratio_range=(0.05, 0.4),
                 interpolation='bicubic', backend='pillow'),
            *flip_and_color_jitter, dict(blur, prob=0.5)
        ],
    ])
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='ResumableDefaultSampler', shuffle=True),
    drop_last=True,
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='ISIC2018Task1Dataset', data_root='data/ISIC2018', split='train',
        pipeline=[dict(type='LoadImageStrict'), views, dict(type='mmpretrain.PackInputs')]))
train_cfg = dict(_delete_=True, type='ResumableIterBasedTrainLoop', max_iters=12)
val_cfg = None  # the k-NN validation is tested in tests/test_configs/test_dino_configs.py
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=1, end=3,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay', eta_min_ratio=10.0,
         by_epoch=True, begin=0, end=3, convert_to_iter_based=True),
]
custom_hooks = [
    dict(type='MetricsJsonHook'),
    dict(type='SafeResumeHook'),
    dict(type='DINOHook', warmup_teacher_temp=0.04, teacher_temp=0.07,
         warmup_teacher_temp_epochs=2, momentum=0.99, freeze_last_layer_epochs=1, clip_grad=3.0),
    dict(type='SplitRecordHook'),
]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=4))
