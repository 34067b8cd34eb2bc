# Table 1, ImageNet + DINO, step 1: DINO pretraining of DeiT-S (from ImageNet weights) on
# the training split of CBIS-DDSM. Step 2, export the teacher's backbone (docs/dino.md):
#   python tools/misc/export_backbone.py work_dirs/<this config's name> \
#       checkpoints/dino/<this config's name>.safetensors
# Step 3, fine-tune:
#   configs/classification/deit-s/deit-s_in1k-dino_1xb64_plateau_cbis-ddsm-224.py
_base_ = [
    '../_base_/models/dino_deit-s.py',
    '../_base_/datasets/dino_cbis_ddsm.py',
    '../_base_/schedules/dino_adamw_cos300e.py',
]
pretrained = 'checkpoints/deit_small_patch16_224.fb_in1k.safetensors'
model = dict(backbone=dict(pretrained=pretrained))
