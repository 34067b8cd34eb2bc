# Table 3: k-NN (k=200, cosine) of frozen embeddings, 2 models x 3 initialisations x 5 datasets.
# With ImageNet or ImageNet+DINO weights the encoder is fixed and k-NN deterministic: one run
# per cell. The random rows are five random initialisations, one per seed (the paper's
# caption: median +- std over 5 runs).
#   python tools/run_study.py configs/studies/table3.py [--dry-run]
_base_ = ['./_cells.py']
models = {'ResNet50': dict(m='resnet50'), 'DeiT-S': dict(m='deit-s')}
seeds = [0]
seeds_by = dict(init={'random': [0, 1, 2, 3, 4]})
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
