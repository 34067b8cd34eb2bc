# CBIS-DDSM: is there a mass in the mammogram (binary), the four official tables and the DICOM
# tree as downloaded under data_root; seeded split 80/10/10 grouped by patient; ROC-AUC.
# The mammograms are read from DICOM (16-bit, windowed to 8-bit: docs/datasets.md); the PNG
# layout of tools/dataset_converters/cbis_ddsm_to_png.py gives the same pixels.
_base_ = ['./cls_recipe_224.py']
dataset_type = 'CBISDDSMDataset'
data_root = 'data/CBIS-DDSM'
split_args = dict(type=dataset_type, data_root=data_root, split_seed=0, img_format='dicom')
train_pipeline = [dict(type='LoadDicom')] + _base_.train_pipeline[1:]
test_pipeline = [dict(type='LoadDicom')] + _base_.test_pipeline[1:]
train_dataloader = dict(dataset=dict(split='train', pipeline=train_pipeline, **split_args))
val_dataloader = dict(dataset=dict(split='val', pipeline=test_pipeline, **split_args))
test_dataloader = dict(dataset=dict(split='test', pipeline=test_pipeline, **split_args))
val_evaluator = dict(type='ROCAUCMetric')
test_evaluator = val_evaluator
# The headline metric, the one the study's tables report; the metric reports it first, so the
# schedules' 'auto' monitor (best checkpoint, plateau steps) follows it.
monitor = 'auc'
head = dict(
    type='mmpretrain.LinearClsHead', num_classes=2,
    loss=dict(type='mmpretrain.CrossEntropyLoss'))
