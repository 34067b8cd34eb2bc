# ISIC 2018 Task 1 (lesion segmentation), official layout under data_root (docs/datasets.md).
# The official training set is split 90/10 into train/val (seeded; the split record is saved in
# the work dir); the official validation and test sets are used for testing when present.
dataset_type = 'ISIC2018Task1Dataset'
data_root = 'data/ISIC2018'
crop_size = (512, 512)
split_seed = 0

# The study: resize to 512x512, colour jitter, horizontal + vertical flips, random resized crop.
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
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, split='train', split_seed=split_seed,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, split='val', split_seed=split_seed,
        pipeline=test_pipeline, test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, split='official_test',
        pipeline=test_pipeline, test_mode=True))
val_evaluator = dict(type='LesionSegMetric')
test_evaluator = val_evaluator
# The headline metric, the one the study's tables report; the metric reports it first, so the
# schedules' 'auto' monitor (best checkpoint, plateau steps) follows it.
monitor = 'IoU'
# No fixed `name`: the Runner names the visualizer after the run, so that several runs in one
# process (a study, a notebook) each log to their own work dir.
# Overlays are drawn at most 1024 pixels on the longer side (ISIC images reach 6000x4000).
visualizer = dict(
    type='BoundedSegLocalVisualizer', max_size=1024, vis_backends=[dict(type='LocalVisBackend')],
    alpha=0.5)
