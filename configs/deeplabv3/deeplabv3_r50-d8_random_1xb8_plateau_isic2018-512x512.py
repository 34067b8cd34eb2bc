# DeepLabV3-ResNet-50 from random (Kaiming) init, LR 1e-3.
_base_ = ['./deeplabv3_r50-d8_1xb8_plateau_isic2018-512x512.py']
model = dict(backbone=dict(init_cfg=None))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
