# CheXpert: 14 observations, multi-label, uncertain labels mapped by `uncertainty` (the study's
# U-Zeros; 'ones', or 'ignore' to mask them in the loss and the metric); seeded split 80/10/10
# grouped by patient. Metric: mean ROC-AUC over the 14 observations (`auc`), also over the 5
# competition ones (`auc_competition`).
_base_ = ['./cls_recipe_224.py']
dataset_type = 'CheXpertDataset'
data_root = 'data/CheXpert-v1.0-small'
uncertainty = 'zeros'
split_args = dict(type=dataset_type, data_root=data_root, split_seed=0, uncertainty=uncertainty)
train_dataloader = dict(dataset=dict(split='train', **split_args))
val_dataloader = dict(dataset=dict(split='val', **split_args))
test_dataloader = dict(dataset=dict(split='test', **split_args))
val_evaluator = dict(
    type='ROCAUCMetric', multi_label=True,
    class_subsets=dict(competition=['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema',
                                    'Pleural Effusion']))
test_evaluator = val_evaluator
# The headline metric, the one the study's tables report; the metric reports it first, so the
# schedules' 'auto' monitor (best checkpoint, plateau steps) follows it.
monitor = 'auc'
head = dict(
    type='mmpretrain.MultiLabelLinearClsHead', num_classes=14,
    loss=dict(type='medtrans.MaskedBCEWithLogitsLoss'))
