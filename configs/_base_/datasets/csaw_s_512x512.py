# CSAW-S (tumour segmentation in mammograms), published layout under data_root (docs/datasets.md):
# the training patients split 90/10 into train/val, grouped by patient (seeded; the split record
# is saved in the work dir); tested on test_data against annotator 1. Loaders, test pipeline,
# metric and visualizer are those of the ISIC 2018 base.
_base_ = ['./isic2018_task1_512x512.py']
dataset_type = 'CSAWSDataset'
data_root = 'data/CsawS'
crop_size = (512, 512)
split_seed = 0

# The study: the ISIC 2018 augmentations plus elastic deformation. Its parameters are ours (the
# study gives none): at the 512x512 working size, before cropping, a displacement field smooth
# over about 16 pixels that moves pixels by 6.8 pixels on average (99th percentile 17);
# torchvision's defaults (alpha 50, sigma 5) move them by under a pixel there.
train_pipeline = [
    dict(type='LoadImageStrict'),
    dict(type='LoadBinaryMask'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='RandomElasticDeform', prob=0.5, alpha=1000.0, sigma=16.0),
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
train_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=data_root, split_seed=split_seed,
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=data_root, split_seed=split_seed))
# annotator=2 or 3 scores against the other experts (tools/analysis/annotator_agreement.py
# gives their agreement with annotator 1).
test_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split='test', annotator=1))
