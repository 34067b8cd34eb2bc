# DeiT-B (patch 16): a 768-wide embedding.
_base_ = ['./cls_deit.py']
model = dict(backbone=dict(arch='deit-base'), head=dict(in_channels=768))
