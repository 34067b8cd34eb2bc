# Table 5, ImageNet init: DeiT-S patch 8 on CBIS-DDSM, ROC-AUC.
_base_ = [
    '../../_base_/models/cls_deit-s-p8.py',
    '../../_base_/datasets/cbis_ddsm.py',
    '../../_base_/default_runtime.py',
    '../../_base_/schedules/adam_plateau_20k.py',
]
pretrained = 'checkpoints/deit_small_patch16_224.fb_in1k.safetensors'
model = dict(backbone=dict(pretrained=pretrained), head={{_base_.head}})
