# DINO on Swin-T (window 7, patch 4): the pooled last stage (768 wide) feeds the head; stochastic
# depth 0.1 in the student (timm's default; the teacher runs without it). `pretrained`: a local
# ImageNet file (the study starts DINO from ImageNet weights), or None for random init.
_base_ = ['./dino_common.py']
model = dict(
    backbone=dict(
        type='TimmSwinTransformer', arch='swin-tiny', drop_path_rate=0.1, pretrained=None))
