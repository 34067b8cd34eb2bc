# Table 4: capacity, ImageNet initialisation: ResNet-18/50/152 and DeiT-T/S/B x 5 datasets
# x 5 seeds.
#   python tools/run_study.py configs/studies/table4.py [--dry-run]
_base_ = ['./_cells.py']
seeds = [0, 1, 2, 3, 4]
grid = dict(
    table='Table 4',
    row='{model}',
    column='{dataset}',
    config='configs/classification/{m}/{m}_in1k_1xb64_plateau_{d}-224.py',
    values=dict(
        model={'ResNet18': dict(m='resnet18'), 'ResNet50': dict(m='resnet50'),
               'ResNet152': dict(m='resnet152'), 'DeiT-T': dict(m='deit-t'),
               'DeiT-S': dict(m='deit-s'), 'DeiT-B': dict(m='deit-b')},
        dataset={{_base_.datasets}}))
