# Table 4, ImageNet init: ResNet-18 on PatchCamelyon, ROC-AUC.
_base_ = [
    '../../_base_/models/cls_resnet18.py',
    '../../_base_/datasets/pcam.py',
    '../../_base_/default_runtime.py',
    '../../_base_/schedules/adam_plateau_20k.py',
]
pretrained = 'checkpoints/resnet18.tv_in1k.safetensors'
model = dict(backbone=dict(pretrained=pretrained), head={{_base_.head}})
