# Inception-v3 image classifier: the backbone's image embedding (2048 wide; CLS token or pooled
# last stage) feeds the dataset's head (`head` of the dataset base, completed here with its
# input width). `pretrained`: a local ImageNet file, or a backbone exported from a medtrans run.
# Inception's ImageNet weights (timm's inception_v3.tv_in1k) expect inputs in [-1, 1], which
# torchvision's model made itself from ImageNet-normalised ones (transform_input).
data_preprocessor = dict(
    type='mmpretrain.ClsDataPreprocessor',
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    to_rgb=True)
model = dict(
    type='mmpretrain.ImageClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='medtrans.TimmInceptionV3', out_type='embedding', pretrained=None),
    head=dict(in_channels=2048))
