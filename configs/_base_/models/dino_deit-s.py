# DINO on DeiT-S (patch 16): the CLS token (384 wide) feeds the head. Stochastic depth 0.1 in the
# student, as DINO's default for ViTs (the teacher runs without it). `pretrained`: a local
# ImageNet file (the study starts DINO from ImageNet weights), or None for random init.
_base_ = ['./dino_common.py']
model = dict(
    backbone=dict(
        type='DeiT', arch='deit-small', patch_size=16, drop_path_rate=0.1, pretrained=None))
