# k-NN (k=20) of the frozen embedding of tiny_dino_stripes.py's backbone, as the shipped k-NN
# configs: a classification config (the shipped DeiT classifier, schedule and runtime; the model
# at that size, the data of that test) and the k-NN base. The train half of the 32x32 images is
# the memory, the other half is scored by balanced recall. data_root is set by the test.
_base_ = [
    '../../../configs/_base_/models/cls_deit-s.py',
    '../../../configs/_base_/default_runtime.py',
    '../../../configs/_base_/schedules/adam_plateau_20k.py',
    '../../../configs/_base_/knn.py',
]
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=64, num_layers=4, num_heads=4), patch_size=8,
        img_size=32),
    head=dict(type='mmpretrain.LinearClsHead', num_classes=2, in_channels=64,
              loss=dict(type='mmpretrain.CrossEntropyLoss')))
pipeline = [
    dict(type='LoadImageStrict'),
    dict(type='mmpretrain.PackInputs', meta_keys=('sample_id', 'sample_idx', 'img_path')),
]
dataset = dict(type='CustomClsDataset', data_root='data/stripes',
               split_fractions=dict(train=0.5, test=0.5), pipeline=pipeline)
train_dataloader = dict(
    batch_size=64, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(split='train', **dataset))
test_dataloader = dict(
    batch_size=64, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(split='test', test_mode=True, **dataset))
test_evaluator = dict(type='BalancedRecallMetric')
val_dataloader = test_dataloader
val_evaluator = test_evaluator
monitor = 'recall'
test_cfg = dict(_base_.knn_test_cfg, k=20)
randomness = dict(seed=0, deterministic=True)
