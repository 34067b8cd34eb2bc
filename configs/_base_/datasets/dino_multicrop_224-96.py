# DINO's multi-crop views (facebookresearch/dino, DataAugmentationDINO) from mmpretrain's MultiView
# and transforms: 2 global crops of 224 (area 0.4-1 of the image) and `num_local_crops` local
# crops of 96 (area 0.05-0.4), bicubic; each view flipped, colour-jittered (0.4, 0.4, 0.2, 0.1;
# p=0.8), made grey (p=0.2), blurred (radius uniform in 0.1-2; p=1, 0.1 and 0.5 for the first
# global, second global and local views), and the second global view solarised (threshold
# 128, p=0.2). Images stay BGR: the grey weights are listed B, G, R, and the model's data
# preprocessor converts to RGB and normalises.
# A dino_<dataset>.py base puts these views after the dataset's own loading step in its training
# dataloader: the DINO run reads the training split of the classification runs.
global_crop_size = 224
local_crop_size = 96
num_local_crops = 8
global_crop_scale = (0.4, 1.0)
local_crop_scale = (0.05, 0.4)
flip_and_color_jitter = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandomApply',
        prob=0.8,
        transforms=[
            dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
        ]),
    dict(
        type='RandomGrayscale',
        prob=0.2,
        keep_channels=True,
        channel_weights=(0.114, 0.587, 0.2989)),
]


def blur(prob):
    return dict(
        type='mmpretrain.GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf',
        prob=prob)


def crop(size, scale):
    return dict(
        type='mmpretrain.RandomResizedCrop', scale=size, crop_ratio_range=scale,
        interpolation='bicubic', backend='pillow')


dino_views = dict(
    type='mmpretrain.MultiView',
    num_views=[1, 1, num_local_crops],
    transforms=[
        [crop(global_crop_size, global_crop_scale), *flip_and_color_jitter, blur(1.0)],
        [
            crop(global_crop_size, global_crop_scale), *flip_and_color_jitter, blur(0.1),
            dict(type='mmpretrain.Solarize', thr=128, prob=0.2)
        ],
        [crop(local_crop_size, local_crop_scale), *flip_and_color_jitter, blur(0.5)],
    ])
dino_pack = dict(type='mmpretrain.PackInputs')
# Batch 256 in all (4 GPUs x 64), as the study; DINO's linear scaling rule sets the LR for
# another total (`auto_scale_lr`). An epoch is one pass over the training split (the last
# partial batch dropped, as DINO); the sampler gives each process its share and each sample a
# seed of its own to be augmented with, so a resumed run starts there without reading the
# skipped batches (medtrans.datasets.samplers).
dino_train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='ResumableDefaultSampler', shuffle=True),
    drop_last=True,
    collate_fn=dict(type='default_collate'))
dino_auto_scale_lr = dict(base_batch_size=256, enable=True)
