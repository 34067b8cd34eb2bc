# Swin-T (window 7, patch 4) image classifier: the pooled last stage, 768 wide, is the embedding.
_base_ = ['./cls_classifier.py']
model = dict(
    backbone=dict(
        type='medtrans.TimmSwinTransformer',
        arch='swin-tiny',
        out_type='embedding',
        pretrained=None),
    head=dict(in_channels=768))
