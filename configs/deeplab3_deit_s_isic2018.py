# Headline: DeepLabV3 with an ImageNet-pretrained DeiT-S encoder on ISIC 2018 Task 1, 512x512,
# the study's recipe (Adam 1e-4, warm-up, LR / 10 on plateau down to 1e-6, best by val IoU).
#   python tools/train.py configs/deeplab3_deit_s_isic2018.py
# `pretrained` is a local timm DeiT-S ImageNet state dict (.pth or .safetensors, e.g. timm's
# deit_small_patch16_224.fb_in1k); nothing is downloaded. For random init use the random-init
# recipe: configs/deeplabv3/deeplabv3_deit-s_random_1xb8_plateau_isic2018-512x512.py.
_base_ = [
    '_base_/models/deeplabv3_deit-s_cls-adapter.py',
    '_base_/datasets/isic2018_task1_512x512.py',
    '_base_/default_runtime.py',
    '_base_/schedules/adam_plateau_20k.py',
]
data_root = 'data/ISIC2018'
pretrained = 'checkpoints/deit_small_patch16_224.fb_in1k.safetensors'
model = dict(backbone=dict(pretrained=pretrained))
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
# The segmentation visualisation hook (drawn by tools/test.py --show-dir).
default_hooks = dict(visualization=dict(type='mmseg.SegVisualizationHook'))
