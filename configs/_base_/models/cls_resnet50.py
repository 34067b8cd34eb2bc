# ResNet-50: a 2048-wide embedding.
_base_ = ['./cls_resnet.py']
model = dict(backbone=dict(depth=50), head=dict(in_channels=2048))
