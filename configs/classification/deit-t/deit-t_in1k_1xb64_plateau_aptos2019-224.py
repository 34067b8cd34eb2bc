# Table 4, ImageNet init: DeiT-T on APTOS 2019, quadratic kappa.
_base_ = [
    '../../_base_/models/cls_deit-t.py',
    '../../_base_/datasets/aptos2019.py',
    '../../_base_/default_runtime.py',
    '../../_base_/schedules/adam_plateau_20k.py',
]
pretrained = 'checkpoints/deit_tiny_patch16_224.fb_in1k.safetensors'
model = dict(backbone=dict(pretrained=pretrained), head={{_base_.head}})
