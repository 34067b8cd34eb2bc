# Table 3, ImageNet init: k-NN of frozen ResNet-50 features (pooled last stage) on
# PatchCamelyon, ROC-AUC.
_base_ = [
    '../../classification/resnet50/resnet50_in1k_1xb64_plateau_pcam-224.py',
    '../../_base_/knn.py',
]
test_cfg = {{_base_.knn_test_cfg}}
