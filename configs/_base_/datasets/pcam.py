# PatchCamelyon: tumour vs normal 96x96 patches, the official h5 files under data_root and the
# official train/valid/test splits; ROC-AUC. Patches go through the same recipe (resized to 256).
_base_ = ['./cls_recipe_224.py']
dataset_type = 'PCamDataset'
data_root = 'data/pcam'
# Patches come from the h5 files, not from image files: the recipe with that loader first.
train_pipeline = [dict(type='LoadPCamPatch')] + _base_.train_pipeline[1:]
test_pipeline = [dict(type='LoadPCamPatch')] + _base_.test_pipeline[1:]
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline))
test_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline))
val_evaluator = dict(type='ROCAUCMetric')
test_evaluator = val_evaluator
# The headline metric, the one the study's tables report; the metric reports it first, so the
# schedules' 'auto' monitor (best checkpoint, plateau steps) follows it.
monitor = 'auc'
head = dict(
    type='mmpretrain.LinearClsHead', num_classes=2,
    loss=dict(type='mmpretrain.CrossEntropyLoss'))
