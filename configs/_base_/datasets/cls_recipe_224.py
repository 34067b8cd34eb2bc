# The study's classification recipe (docs: ../../shared/docs/paper-settings.md): resize to 256x256,
# horizontal and vertical flips, colour jitter (0.2, 0.2, 0.1, 0.1) with p=0.8 and a random
# resized crop to 224 (area 0.8-1.2 of the image, as the study's code: an area above 1 cannot
# be cut out and falls back to a centre crop); validation and test: resize 256, centre crop 224.
# Each dataset base inherits this and sets the dataset, its metric and `monitor`.
img_size = 224
resize = (256, 256)
meta_keys = ('sample_id', 'sample_idx', 'img_path', 'ori_shape', 'img_shape')
# Large JPEGs (ISIC up to 6000x4000, fundus photos) are decoded at 1/2, 1/4 or 1/8 of their
# size, the largest reduction keeping the shorter side >= the resize (libjpeg's DCT scaling,
# an area average): 3x faster at 6000x4000 (benchmarks/README.md), and closer to the study's
# antialiased PIL resize than OpenCV's bilinear resize from full size. Other formats decode in
# full.
loading = dict(type='LoadImageStrict', reduce_jpeg_to=256)
train_pipeline = [
    loading,
    dict(type='Resize', scale=resize, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(
        type='RandomApply',
        prob=0.8,
        transforms=[
            dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.1, hue=0.1)
        ]),
    dict(type='mmpretrain.RandomResizedCrop', scale=img_size, crop_ratio_range=(0.8, 1.2)),
    dict(type='mmpretrain.PackInputs', meta_keys=meta_keys),
]
test_pipeline = [
    loading,
    dict(type='Resize', scale=resize, keep_ratio=False),
    dict(type='mmpretrain.CenterCrop', crop_size=img_size),
    dict(type='mmpretrain.PackInputs', meta_keys=meta_keys),
]
# Batch 64 on one GPU (the study does not state its fine-tuning batch size). With another total
# batch size, `auto_scale_lr = dict(enable=True)` scales the LR linearly from 64.
batch_size = 64
auto_scale_lr = dict(base_batch_size=64, enable=False)
# Loaders (docs/configs.md): 8 workers (lowered to the cores each process has), kept alive
# between epochs; pinned memory for the copy to the GPU (dropped on machines without one).
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
