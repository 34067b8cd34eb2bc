# Table 1: fine-tuned classification, 4 models x 3 initialisations x 5 datasets x 5 seeds.
#   python tools/run_study.py configs/studies/table1.py [--dry-run]
_base_ = ['./_cells.py']
models = {'Inception': dict(m='inception-v3'), 'ResNet50': dict(m='resnet50'),
          'DeiT-S': dict(m='deit-s'), 'Swin-T': dict(m='swin-t')}
seeds = [0, 1, 2, 3, 4]
grid = dict(
    table='Table 1',
    row='{init} {model}',
    column='{dataset}',
    config='configs/classification/{m}/{m}_{i}_1xb64_plateau_{d}-224.py',
    values=dict(
        init={{_base_.inits}},
        model=models,
        dataset={{_base_.datasets}}))
# The ImageNet+DINO rows start from the teacher backbones of DINO runs on each dataset,
# run first (docs/study.md).
pretraining = dict(config={{_base_.dino_config}}, export={{_base_.dino_export}},
                   values=dict(model=models, dataset={{_base_.datasets}}))
