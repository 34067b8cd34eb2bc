# Table 5: DeiT-S with 16x16 or 8x8 patches, ImageNet initialisation, x 5 datasets x 5 seeds.
#   python tools/run_study.py configs/studies/table5.py [--dry-run]
_base_ = ['./_cells.py']
seeds = [0, 1, 2, 3, 4]
grid = dict(
    table='Table 5',
    row='DeiT-S {patch}',
    column='{dataset}',
    config='configs/classification/{m}/{m}_in1k_1xb64_plateau_{d}-224.py',
    values=dict(
        patch={'16x16': dict(m='deit-s'), '8x8': dict(m='deit-s-p8')},
        dataset={{_base_.datasets}}))
