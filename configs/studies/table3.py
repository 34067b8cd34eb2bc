# Table 3: k-NN (k=200, cosine) of frozen embeddings, 2 models x 3 initialisations x 5 datasets.
# k-NN is deterministic, so one run per cell.
#   python tools/run_study.py configs/studies/table3.py [--dry-run]
_base_ = ['./_cells.py']
models = {'ResNet50': dict(m='resnet50'), 'DeiT-S': dict(m='deit-s')}
seeds = [0]
grid = dict(
    table='Table 3',
    row='{init} {model}',
    column='{dataset}',
    config='configs/knn/{m}/knn_{m}_{i}_1xb64_{d}-224.py',
    values=dict(
        init={{_base_.inits}},
        model=models,
        dataset={{_base_.datasets}}))
# The ImageNet+DINO rows start from the teacher backbones of DINO runs on each dataset,
# run first (docs/study.md).
pretraining = dict(config={{_base_.dino_config}}, export={{_base_.dino_export}},
                   values=dict(model=models, dataset={{_base_.datasets}}))
