# Table 1, ImageNet init: Swin-T on PatchCamelyon, ROC-AUC.
_base_ = [
    '../../_base_/models/cls_swin-t.py',
    '../../_base_/datasets/pcam.py',
    '../../_base_/default_runtime.py',
    '../../_base_/schedules/adam_plateau_20k.py',
]
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.ms_in1k.safetensors'
model = dict(backbone=dict(pretrained=pretrained), head={{_base_.head}})
