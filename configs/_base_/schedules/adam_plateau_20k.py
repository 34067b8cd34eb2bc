# The study's supervised recipe: Adam, 1,000 linear warm-up iterations, LR / 10 whenever the
# validation metric stops improving, down to 1e-6; keep the best checkpoint. Iteration-based,
# validating every 500 iterations; each validation is one step of the plateau scheduler.
# The monitored metric is the first one the validation reports ('auto'), the dataset's headline
# metric (its base's `monitor`): the best checkpoint and the plateau steps follow it.
lr = 1e-4
val_interval = 500
# A NaN/inf loss or gradient stops the run before it reaches the weights ('skip' to go on).
# fused=True: PyTorch's one-kernel Adam, on GPUs and CPUs (on this project's CPUs 8x faster
# than the default per-parameter loop for DeiT-S; docs/configs.md).
optim_wrapper = dict(
    type='GuardedOptimWrapper', on_non_finite='raise',
    optimizer=dict(type='Adam', lr=lr, weight_decay=0.0, fused=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(
        type='AutoReduceOnPlateauLR', monitor='auto', rule='greater', factor=0.1, patience=4,
        min_value=1e-6, by_epoch=True),
]
train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=20000, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CrashSafeCheckpointHook', by_epoch=False, interval=val_interval, max_keep_ckpts=1,
        save_best='auto', rule='greater', save_last=True,
        backend_args=dict(backend='medtrans_atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
