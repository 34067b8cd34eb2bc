# Table 3, ImageNet init: k-NN of frozen DeiT-S features (CLS token) on PatchCamelyon, ROC-AUC.
_base_ = [
    '../../classification/deit-s/deit-s_in1k_1xb64_plateau_pcam-224.py',
    '../../_base_/knn.py',
]
test_cfg = {{_base_.knn_test_cfg}}
