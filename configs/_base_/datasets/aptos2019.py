# APTOS 2019 blindness detection: 5 diabetic retinopathy grades, official layout under data_root
# (train.csv + train_images/); seeded split 70/15/15 stratified by grade, recorded in the work dir.
_base_ = ['./cls_recipe_224.py']
dataset_type = 'APTOS2019Dataset'
data_root = 'data/APTOS2019'
split_args = dict(type=dataset_type, data_root=data_root, split_seed=0)
train_dataloader = dict(dataset=dict(split='train', **split_args))
val_dataloader = dict(dataset=dict(split='val', **split_args))
test_dataloader = dict(dataset=dict(split='test', **split_args))
val_evaluator = dict(type='CohenKappaMetric', weights='quadratic')
test_evaluator = val_evaluator
# The headline metric, the one the study's tables report; the metric reports it first, so the
# schedules' 'auto' monitor (best checkpoint, plateau steps) follows it.
monitor = 'kappa'
head = dict(
    type='mmpretrain.LinearClsHead', num_classes=5,
    loss=dict(type='mmpretrain.CrossEntropyLoss'))
