# ISIC 2018 Task 1 (lesion segmentation), official layout under data_root (docs/datasets.md).
# The official training set is split 90/10 into train/val (seeded; the split record is saved in
# the work dir); the official validation and test sets are used for testing when present.
_base_ = ['./seg_recipe_512x512.py']
dataset_type = 'ISIC2018Task1Dataset'
data_root = 'data/ISIC2018'
split_seed = 0
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split='train', split_seed=split_seed))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split='val', split_seed=split_seed))
test_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split='official_test'))
val_evaluator = dict(type='LesionSegMetric')
test_evaluator = val_evaluator
# The headline metric, the one the study's tables report; the metric reports it first, so the
# schedules' 'auto' monitor (best checkpoint, plateau steps) follows it.
monitor = 'IoU'
