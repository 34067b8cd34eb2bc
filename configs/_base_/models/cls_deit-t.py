# DeiT-T (patch 16): a 192-wide embedding.
_base_ = ['./cls_deit.py']
model = dict(backbone=dict(arch='deit-tiny'), head=dict(in_channels=192))
