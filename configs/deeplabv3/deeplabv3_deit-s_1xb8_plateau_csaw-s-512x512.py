# Table 2, CSAW-S: DeepLabV3 with an ImageNet DeiT-S encoder, the headline recipe.
_base_ = [
    '../_base_/models/deeplabv3_deit-s_cls-adapter.py',
    '../_base_/datasets/csaw_s_512x512.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/adam_plateau_20k.py',
]
pretrained = 'checkpoints/deit_small_patch16_224.fb_in1k.safetensors'
model = dict(backbone=dict(pretrained=pretrained))
# The segmentation visualisation hook (drawn by tools/test.py --show-dir).
default_hooks = dict(visualization=dict(type='mmseg.SegVisualizationHook'))
