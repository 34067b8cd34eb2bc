# The demo config made tiny for end-to-end tests: DeiT-Ti and a handful of iterations.
_base_ = ['../../../configs/demo/deeplab3_deit_s_demo_isic2018.py']
model = dict(
    backbone=dict(arch='deit-tiny', out_indices=(5, 11)),
    neck=dict(in_channels=192),
    decode_head=dict(in_channels=384, channels=32),
    auxiliary_head=dict(in_channels=384, channels=16))
train_dataloader = dict(batch_size=2)
train_cfg = dict(max_iters=6, val_interval=3)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3))
