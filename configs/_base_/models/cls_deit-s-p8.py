# DeiT-S with 8x8 patches: cls_deit-s.py with patch size 8 (the same 384-wide embedding).
_base_ = ['./cls_deit-s.py']
model = dict(backbone=dict(patch_size=8))
