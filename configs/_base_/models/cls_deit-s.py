# DeiT-S (patch 16): a 384-wide embedding.
_base_ = ['./cls_deit.py']
model = dict(backbone=dict(arch='deit-small'), head=dict(in_channels=384))
