# Table 2, CSAW-S: DeepLabV3 with an ImageNet ResNet-50 (dilated, output stride 8).
_base_ = [
    '../_base_/models/deeplabv3_r50-d8.py',
    '../_base_/datasets/csaw_s_512x512.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/adam_plateau_20k.py',
]
pretrained = 'checkpoints/resnet50.tv_in1k.safetensors'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
# The segmentation visualisation hook (drawn by tools/test.py --show-dir).
default_hooks = dict(visualization=dict(type='mmseg.SegVisualizationHook'))
