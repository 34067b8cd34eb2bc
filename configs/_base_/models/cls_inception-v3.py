# Inception-v3 image classifier: the pooled last stage, 2048 wide, is the embedding.
# Inception's ImageNet weights (timm's inception_v3.tv_in1k) expect inputs in [-1, 1], which
# torchvision's model made itself from ImageNet-normalised ones (transform_input): this base
# normalises to [-1, 1] instead of ImageNet's mean and std.
_base_ = ['./cls_classifier.py']
data_preprocessor = dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5])
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(type='medtrans.TimmInceptionV3', out_type='embedding', pretrained=None),
    head=dict(in_channels=2048))
