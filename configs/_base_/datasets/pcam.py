# PatchCamelyon: tumour vs normal 96x96 patches, the official h5 files under data_root and the
# official train/valid/test splits; ROC-AUC. Patches go through the same recipe (resized to 256).
_base_ = ['./cls_recipe_224.py']
dataset_type = 'PCamDataset'
data_root = 'data/pcam'
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split='train'))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split='val'))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split='test'))
val_evaluator = dict(type='ROCAUCMetric')
test_evaluator = val_evaluator
monitor = 'auc'
head = dict(
    type='mmpretrain.LinearClsHead', num_classes=2,
    loss=dict(type='mmpretrain.CrossEntropyLoss'))
