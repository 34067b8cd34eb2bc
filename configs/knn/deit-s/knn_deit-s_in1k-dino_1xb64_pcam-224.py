# Table 3, ImageNet + DINO init: k-NN of frozen DeiT-S features (CLS token) on
# PatchCamelyon, ROC-AUC; the backbone exported from
# configs/dino/dino_deit-s_in1k_4xb64_300e_pcam-224-96.py (docs/dino.md).
_base_ = [
    '../../classification/deit-s/deit-s_in1k-dino_1xb64_plateau_pcam-224.py',
    '../../_base_/knn.py',
]
test_cfg = {{_base_.knn_test_cfg}}
