# Table 1, random init (Kaiming): DeiT-S on APTOS 2019, quadratic kappa.
_base_ = [
    '../../_base_/models/cls_deit-s.py',
    '../../_base_/datasets/aptos2019.py',
    '../../_base_/default_runtime.py',
    '../../_base_/schedules/adam_plateau_20k.py',
]
model = dict(head={{_base_.head}})
# The study: LR 1e-3 from random init, and AdamW for DeiT (PyTorch's default decay).
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01))
