# Runtime shared by every medtrans config.
default_scope = 'medtrans'
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
randomness = dict(seed=0, deterministic=False)
# Set `tensorboard = True` (or --cfg-options tensorboard=True) to also log to TensorBoard.
tensorboard = False
# The task's visualizer and visualization hook come with its dataset base.
vis_backends = [dict(type='LocalVisBackend')]
log_processor = dict(by_epoch=False, window_size=20)
log_level = 'INFO'
load_from = None
resume = False
custom_hooks = [
    dict(type='MetricsJsonHook'),
    dict(type='SafeResumeHook'),
]
