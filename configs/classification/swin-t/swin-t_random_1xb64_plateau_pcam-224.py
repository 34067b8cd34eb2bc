# Table 1, random init (Kaiming): Swin-T on PatchCamelyon, ROC-AUC.
_base_ = [
    '../../_base_/models/cls_swin-t.py',
    '../../_base_/datasets/pcam.py',
    '../../_base_/default_runtime.py',
    '../../_base_/schedules/adam_plateau_20k.py',
]
model = dict(head={{_base_.head}})
# The study: LR 1e-3 from random init.
optim_wrapper = dict(optimizer=dict(lr=1e-3))
