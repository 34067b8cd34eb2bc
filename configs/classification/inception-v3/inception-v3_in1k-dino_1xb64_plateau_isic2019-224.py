# Table 1, ImageNet + DINO init: Inception-v3 on ISIC 2019, balanced recall.
# The ImageNet config of the same cell, initialised with the teacher's backbone exported
# from its DINO run
# configs/dino/dino_inception-v3_in1k_4xb64_300e_isic2019-224-96.py
# (docs/dino.md).
_base_ = ['./inception-v3_in1k_1xb64_plateau_isic2019-224.py']
pretrained = 'checkpoints/dino/dino_inception-v3_in1k_4xb64_300e_isic2019-224-96.safetensors'
model = dict(backbone=dict(pretrained=pretrained))
