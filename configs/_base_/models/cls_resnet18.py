# ResNet-18: a 512-wide embedding.
_base_ = ['./cls_resnet.py']
model = dict(backbone=dict(depth=18), head=dict(in_channels=512))
