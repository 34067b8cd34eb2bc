# DINO pretraining data: the official training split of PatchCamelyon, in DINO's
# multi-crop views. Validation: the classification runs' validation split and metric,
# scored by k-NN of the teacher's embedding (the schedule's val_cfg); no test.
_base_ = ['./pcam.py', './dino_multicrop_224-96.py']
# The dataset's own loading step (its recipe's first transform), then DINO's views.
train_dataloader = dict(
    **_base_.dino_train_dataloader,
    dataset=dict(pipeline=[_base_.train_pipeline[0], _base_.dino_views, _base_.dino_pack]))
auto_scale_lr = _base_.dino_auto_scale_lr
# DINO's data preprocessor takes batches stacked by default_collate.
val_dataloader = dict(collate_fn=dict(type='default_collate'))
test_dataloader = None
test_evaluator = None
