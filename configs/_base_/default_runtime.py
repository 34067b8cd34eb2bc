# Runtime shared by every medtrans config. MMEngine's entry points build the runner it names
# (`RUNNERS.build(cfg)`); `Runner.from_cfg(cfg)` runs the config with MMEngine's plain Runner.
default_scope = 'medtrans'
runner_type = 'medtrans.MedtransRunner'
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
randomness = dict(seed=0, deterministic=False)
# The segmentation visualizer comes with its recipe base; the other tasks use MMEngine's default,
# the local backend. tools/train.py --vis-backend tensorboard|mlflow|wandb adds a backend to
# `visualizer.vis_backends` (MMEngine's own list, where a config may name them too).
log_processor = dict(by_epoch=False, window_size=20)
log_level = 'INFO'
load_from = None
resume = False
# SplitRecordHook keeps each divided split in {work_dir}/splits/ and checks later runs against it.
# PreemptionHook: on SIGUSR1 (Slurm's warning before a time limit or preemption), checkpoint,
# requeue the Slurm job and exit with status 75; the requeued run resumes exactly.
custom_hooks = [
    dict(type='MetricsJsonHook'),
    dict(type='SafeResumeHook'),
    dict(type='SplitRecordHook'),
    dict(type='PreemptionHook'),
]
