# Table 1, ImageNet + DINO, step 1: DINO pretraining of Swin-T (from ImageNet weights) on
# the training split of PatchCamelyon. Step 2, export the teacher's backbone (docs/dino.md):
#   python tools/misc/export_backbone.py work_dirs/<this config's name> \
#       checkpoints/dino/<this config's name>.safetensors
# Step 3, fine-tune:
#   configs/classification/swin-t/swin-t_in1k-dino_1xb64_plateau_pcam-224.py
_base_ = [
    '../_base_/models/dino_swin-t.py',
    '../_base_/datasets/dino_pcam.py',
    '../_base_/schedules/dino_adamw_cos300e.py',
]
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.ms_in1k.safetensors'
model = dict(backbone=dict(pretrained=pretrained))
