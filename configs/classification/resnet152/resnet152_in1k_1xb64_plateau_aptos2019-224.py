# Table 4, ImageNet init: ResNet-152 on APTOS 2019, quadratic kappa.
_base_ = [
    '../../_base_/models/cls_resnet152.py',
    '../../_base_/datasets/aptos2019.py',
    '../../_base_/default_runtime.py',
    '../../_base_/schedules/adam_plateau_20k.py',
]
pretrained = 'checkpoints/resnet152.tv_in1k.safetensors'
model = dict(backbone=dict(pretrained=pretrained), head={{_base_.head}})
