# DeiT image classifiers (medtrans.DeiT; the embedding is the CLS token), patch 16: the variants
# cls_deit-<size>.py set the architecture and the head's input width (the embedding's).
_base_ = ['./cls_classifier.py']
model = dict(
    backbone=dict(type='medtrans.DeiT', patch_size=16, out_type='embedding', pretrained=None))
