# DINO pretraining data: the training split of CheXpert as its classification runs
# split it (same seed: DINO never sees their validation or test images), in DINO's
# multi-crop views. No validation or test during pretraining.
_base_ = ['./chexpert.py', './dino_multicrop_224-96.py']
train_dataloader = {{_base_.dino_train_dataloader}}
auto_scale_lr = {{_base_.dino_auto_scale_lr}}
val_dataloader = None
val_evaluator = None
test_dataloader = None
test_evaluator = None
