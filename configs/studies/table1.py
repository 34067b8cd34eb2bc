# Table 1: fine-tuned classification, 4 models x 3 initialisations x 5 datasets x 5 seeds.
#   python tools/run_study.py configs/studies/table1.py [--dry-run]
# The ImageNet+DINO rows start from exported DINO backbones (configs/dino/, docs/dino.md): run
# those DINO pretrainings and exports first.
_base_ = ['./_datasets.py']
seeds = [0, 1, 2, 3, 4]
grid = dict(
    table='Table 1',
    row='{init} {model}',
    column='{dataset}',
    config='configs/classification/{m}/{m}_{i}_1xb64_plateau_{d}-224.py',
    values=dict(
        init={'random': dict(i='random'), 'ImageNet': dict(i='in1k'),
              'ImageNet+DINO': dict(i='in1k-dino')},
        model={'Inception': dict(m='inception-v3'), 'ResNet50': dict(m='resnet50'),
               'DeiT-S': dict(m='deit-s'), 'Swin-T': dict(m='swin-t')},
        dataset={{_base_.datasets}}))
