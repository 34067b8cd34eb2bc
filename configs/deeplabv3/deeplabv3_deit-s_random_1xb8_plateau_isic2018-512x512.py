# DeepLabV3-DeiT-S from random (Kaiming) init: the study's random-init recipe, AdamW at LR 1e-3.
_base_ = ['../deeplab3_deit_s_isic2018.py']
pretrained = None
model = dict(backbone=dict(pretrained=pretrained))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
