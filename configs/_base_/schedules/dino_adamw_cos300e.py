# DINO pretraining as the study runs it (paper-settings.md): DINO's recipe with its changes and
# without the original code's bugs. 300 epochs (run by iteration, so that --resume continues
# exactly; an epoch is one pass over the training split); AdamW, LR 1e-4 at a total batch of 256
# (DINO's linear scaling rule, `auto_scale_lr` of the data base), 10 warm-up epochs from ~0,
# then cosine to 1e-6; weight decay cosine from 1e-5 up to 1e-4 (not DINO's 0.04 -> 0.4) and
# none on biases and normalisation weights (every 1-D parameter), as DINO; exactly one
# optimizer step per iteration. DINOHook: teacher EMA momentum cosine 0.99 -> 1 per iteration,
# teacher temperature 0.04 -> 0.07 over 30 epochs, last layer frozen in the first epoch,
# per-parameter gradient clipping at 3.0 (DINO's `clip_gradients`).
_base_ = ['../default_runtime.py']
max_epochs = 300
warmup_epochs = 10
lr = 1e-4
min_lr = 1e-6
weight_decay = 1e-5
weight_decay_end = 1e-4
# One log line sums up the per-parameter options (no weight decay on 1-D parameters) and the
# frozen teacher, of which MMEngine's constructor logs a line each.
optim_wrapper = dict(
    type='GuardedOptimWrapper',
    constructor='SummarizedOptimWrapperConstructor',
    on_non_finite='raise',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=weight_decay, fused=True),
    paramwise_cfg=dict(flat_decay_mult=0.0))
param_scheduler = [
    # MMEngine's LinearLR cannot start at exactly 0 (DINO's warm-up start).
    dict(
        type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0, end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR', eta_min=min_lr, by_epoch=True, begin=warmup_epochs,
        end=max_epochs, convert_to_iter_based=True),
    # A ratio, not a value, so that the undecayed groups stay at 0.
    dict(
        type='CosineAnnealingParamScheduler', param_name='weight_decay',
        eta_min_ratio=weight_decay_end / weight_decay, by_epoch=True, begin=0,
        end=max_epochs, convert_to_iter_based=True),
]
# Validation every 10 epochs: k-NN (k=200, T=0.07, docs/knn.md) of the teacher's embedding,
# the train split as memory, scored by the dataset's metric. It is a log of how the features
# evolve; the exported backbone is the last teacher, as in the study.
val_interval = 10
train_cfg = dict(
    type='IterBasedEpochsTrainLoop', max_epochs=max_epochs, val_begin=val_interval,
    val_interval=val_interval)
val_cfg = dict(type='KNNValLoop', k=200, temperature=0.07, embedding='teacher.backbone')
test_cfg = None
checkpoint_interval = 1000
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CrashSafeCheckpointHook', by_epoch=False, interval=checkpoint_interval,
        max_keep_ckpts=1, save_last=True, backend_args=dict(backend='medtrans_atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
# The runtime's hooks (default_runtime.py), with DINO's after SafeResumeHook.
custom_hooks = _base_.custom_hooks[:2] + [
    dict(
        type='DINOHook',
        warmup_teacher_temp=0.04,
        teacher_temp=0.07,
        warmup_teacher_temp_epochs=30,
        momentum=0.99,
        freeze_last_layer_epochs=1,
        clip_grad=3.0),
] + _base_.custom_hooks[2:]
