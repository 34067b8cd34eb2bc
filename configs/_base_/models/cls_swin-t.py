# Swin-T (window 7, patch 4): the backbone's image embedding (768 wide; CLS token or pooled
# last stage) feeds the dataset's head (`head` of the dataset base, completed here with its
# input width). `pretrained`: a local ImageNet file, or a backbone exported from a medtrans run.
data_preprocessor = dict(
    type='mmpretrain.ClsDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
model = dict(
    type='mmpretrain.ImageClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='medtrans.TimmSwinTransformer',
        arch='swin-tiny',
        out_type='embedding',
        pretrained=None),
    head=dict(in_channels=768))
