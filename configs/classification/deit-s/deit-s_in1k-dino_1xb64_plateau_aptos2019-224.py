# Table 1, ImageNet + DINO init: DeiT-S on APTOS 2019, quadratic kappa.
# The ImageNet config of the same cell, initialised with the teacher's backbone exported
# from its DINO run
# configs/dino/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96.py
# (docs/dino.md).
_base_ = ['./deit-s_in1k_1xb64_plateau_aptos2019-224.py']
pretrained = 'checkpoints/dino/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96.safetensors'
model = dict(backbone=dict(pretrained=pretrained))
