# CBIS-DDSM: is there a mass in the mammogram (binary), official tables under data_root (DICOM
# tree or the converted PNG layout); seeded split 80/10/10 grouped by patient; ROC-AUC.
_base_ = ['./cls_recipe_224.py']
dataset_type = 'CBISDDSMDataset'
data_root = 'data/CBIS-DDSM'
split_file = '{work_dir}/splits/cbis_ddsm_seed0.json'
split_args = dict(type=dataset_type, data_root=data_root, split_seed=0, split_file=split_file)
train_dataloader = dict(dataset=dict(split='train', **split_args))
val_dataloader = dict(dataset=dict(split='val', **split_args))
test_dataloader = dict(dataset=dict(split='test', **split_args))
val_evaluator = dict(type='ROCAUCMetric')
test_evaluator = val_evaluator
monitor = 'auc'
head = dict(
    type='mmpretrain.LinearClsHead', num_classes=2,
    loss=dict(type='mmpretrain.CrossEntropyLoss'))
