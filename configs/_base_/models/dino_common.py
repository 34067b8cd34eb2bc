# DINO (facebookresearch/dino) for any medtrans backbone, through its image embedding (the CLS token
# of a ViT, the pooled last stage of a CNN or Swin): student and EMA teacher, DINO's head (3
# layers, hidden 2048, bottleneck 256, weight-normalised last layer, 65,536 outputs) and loss
# (student temperature 0.1, centre momentum 0.9). The head's input width is the backbone's
# `num_features`. The model bases dino_<model>.py add the backbone; the teacher's schedules are
# in ../schedules/dino_adamw_cos300e.py (DINOHook).
data_preprocessor = dict(
    type='mmpretrain.SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
model = dict(
    type='DINO',
    data_preprocessor=data_preprocessor,
    head=dict(
        type='DINOHead',
        out_channels=65536,
        hidden_channels=2048,
        bottleneck_channels=256,
        num_layers=3,
        norm_last_layer=True),
    # The loss's width is the head's.
    loss=dict(type='DINOLoss', student_temp=0.1, center_momentum=0.9))
# As DINO under DDP: every batch norm of student and teacher (ResNet, Inception) synchronised
# over the processes, so that it normalises with the statistics of the whole batch. MMEngine's
# Runner converts them to torch's SyncBatchNorm (GPUs), MedtransRunner to CPUSyncBatchNorm on
# CPUs; one process keeps plain batch norms; a model without any (DeiT, Swin) is unchanged.
sync_bn = 'torch'
