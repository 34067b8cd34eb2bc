# Tables 1 and 4 and 5 (patch 16), ImageNet init: DeiT-S on CheXpert, mean ROC-AUC.
_base_ = [
    '../../_base_/models/cls_deit-s.py',
    '../../_base_/datasets/chexpert.py',
    '../../_base_/default_runtime.py',
    '../../_base_/schedules/adam_plateau_20k.py',
]
pretrained = 'checkpoints/deit_small_patch16_224.fb_in1k.safetensors'
model = dict(backbone=dict(pretrained=pretrained), head={{_base_.head}})
