# DINO pretraining data: the official training split of PatchCamelyon (patches read from
# its HDF5 files), in DINO's multi-crop views. No validation or test during pretraining.
_base_ = ['./pcam.py', './dino_multicrop_224-96.py']
train_dataloader = {{_base_.dino_train_dataloader_pcam}}
auto_scale_lr = {{_base_.dino_auto_scale_lr}}
val_dataloader = None
val_evaluator = None
test_dataloader = None
test_evaluator = None
