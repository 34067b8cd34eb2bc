# DINO on Inception-v3: the pooled last stage (2048 wide) feeds the head. `pretrained`: a local
# ImageNet file (the study starts DINO from ImageNet weights), or None for random init.
_base_ = ['./dino_common.py']
model = dict(backbone=dict(type='TimmInceptionV3', pretrained=None))
