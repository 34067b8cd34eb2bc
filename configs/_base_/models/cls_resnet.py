# ResNet image classifiers (medtrans.TimmResNet, torchvision's layout; the embedding is the
# pooled last stage): the variants cls_resnet<depth>.py set the depth and the head's input width
# (the embedding's).
_base_ = ['./cls_classifier.py']
model = dict(backbone=dict(type='medtrans.TimmResNet', out_type='embedding', pretrained=None))
