# The study's segmentation recipe: resize to 512x512, random resize (0.8-1.2) and crop back to
# 512x512, horizontal and vertical flips, colour jitter (0.2, 0.2, 0.1, 0.1) with p=0.8;
# validation and test: resize to 512x512. Batch 8 for training, 1 for validation and test.
# Each dataset base inherits this and sets the dataset, its metric and `monitor`.
crop_size = (512, 512)
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
# Masks stay at their original size: predictions are resized back and scored there.
test_pipeline = [
    dict(type='LoadImageStrict'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadBinaryMask'),
    dict(type='mmseg.PackSegInputs'),
]

# Batch 8 on one GPU; `--auto-scale-lr` scales the LR linearly for another total batch.
auto_scale_lr = dict(base_batch_size=8, enable=False)
# Loaders (docs/configs.md): 4 workers (lowered to the cores each process has), kept alive
# between epochs; pinned memory for the copy to the GPU (dropped on machines without one).
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
# No fixed `name`: the Runner names the visualizer after the run, so that several runs in one
# process (a study, a notebook) each log to their own work dir.
# Overlays are drawn at most 1024 pixels on the longer side (ISIC images reach 6000x4000).
visualizer = dict(
    type='BoundedSegLocalVisualizer', max_size=1024, vis_backends=[dict(type='LocalVisBackend')],
    alpha=0.5)
