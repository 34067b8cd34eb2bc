# Table 3, random init (Kaiming): k-NN of frozen DeiT-S features (CLS token) on
# APTOS 2019, quadratic kappa.
_base_ = [
    '../../classification/deit-s/deit-s_random_1xb64_plateau_aptos2019-224.py',
    '../../_base_/knn.py',
]
test_cfg = {{_base_.knn_test_cfg}}
