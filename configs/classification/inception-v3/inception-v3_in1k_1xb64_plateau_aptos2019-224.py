# Table 1, ImageNet init: Inception-v3 on APTOS 2019, quadratic kappa.
_base_ = [
    '../../_base_/models/cls_inception-v3.py',
    '../../_base_/datasets/aptos2019.py',
    '../../_base_/default_runtime.py',
    '../../_base_/schedules/adam_plateau_20k.py',
]
pretrained = 'checkpoints/inception_v3.tv_in1k.safetensors'
model = dict(backbone=dict(pretrained=pretrained), head={{_base_.head}})
