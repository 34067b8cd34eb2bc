# Table 2: segmentation IoU, DeepLabV3 with an ImageNet ResNet-50 or DeiT-S, x 5 seeds.
# Each cell names its axes (model, dataset) for --only and --data-root (docs/study.md).
#   python tools/run_study.py configs/studies/table2.py [--dry-run]
seeds = [0, 1, 2, 3, 4]
cells = [
    dict(table='Table 2', row='DeepLabV3 ResNet50', column='ISIC2018', model='resnet50',
         dataset='isic2018',
         config='configs/deeplabv3/deeplabv3_r50-d8_1xb8_plateau_isic2018-512x512.py'),
    dict(table='Table 2', row='DeepLabV3 DeiT-S', column='ISIC2018', model='deit-s',
         dataset='isic2018', config='configs/deeplab3_deit_s_isic2018.py'),
    dict(table='Table 2', row='DeepLabV3 ResNet50', column='CSAW-S', model='resnet50',
         dataset='csaw-s',
         config='configs/deeplabv3/deeplabv3_r50-d8_1xb8_plateau_csaw-s-512x512.py'),
    dict(table='Table 2', row='DeepLabV3 DeiT-S', column='CSAW-S', model='deit-s',
         dataset='csaw-s',
         config='configs/deeplabv3/deeplabv3_deit-s_1xb8_plateau_csaw-s-512x512.py'),
]
