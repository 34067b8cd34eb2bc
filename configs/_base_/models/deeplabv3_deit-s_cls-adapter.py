# DeepLabV3 with a DeiT-S encoder: the last block's patch tokens, with the CLS token fused into
# every position (ClsTokenAdapter, docs/models.md), feed the ASPP head; an auxiliary FCN head
# reads block 8, as the ResNet model's reads stage 3. Heads, losses and preprocessing are those of
# the ResNet-50 DeepLabV3 base; the token grid has output stride 16, hence ASPP dilations 6/12/18.
_base_ = ['./deeplabv3_r50-d8.py']
embed_dims = 384
model = dict(
    backbone=dict(
        _delete_=True,
        type='medtrans.DeiT',
        arch='deit-small',
        patch_size=16,
        img_size=512,
        out_indices=(7, 11),
        drop_path_rate=0.1,
        pretrained=None),
    neck=dict(
        type='medtrans.ClsTokenAdapter',
        in_channels=embed_dims,
        fusion='concat',
        patch_size=16,
        output_stride=16),
    decode_head=dict(
        in_channels=2 * embed_dims, in_index=-1, channels=256, dilations=(1, 6, 12, 18)),
    auxiliary_head=dict(in_channels=2 * embed_dims, in_index=0))
