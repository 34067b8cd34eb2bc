# Table 3: k-NN (k=200, cosine) of frozen embeddings, 2 models x 3 initialisations x 5 datasets.
# k-NN is deterministic, so one run per cell.
#   python tools/run_study.py configs/studies/table3.py [--dry-run]
_base_ = ['./_datasets.py']
models = {'ResNet50': dict(m='resnet50'), 'DeiT-S': dict(m='deit-s')}
seeds = [0]
grid = dict(
    table='Table 3',
    row='{init} {model}',
    column='{dataset}',
    config='configs/knn/{m}/knn_{m}_{i}_1xb64_{d}-224.py',
    values=dict(
        init={'random': dict(i='random'), 'ImageNet': dict(i='in1k'),
              'ImageNet+DINO': dict(i='in1k-dino')},
        model=models,
        dataset={{_base_.datasets}}))
# The ImageNet+DINO rows start from the teacher backbones of DINO runs on each dataset
# (configs/dino/), run first and exported where those rows' configs read them.
pretraining = dict(
    config='configs/dino/dino_{m}_in1k_4xb64_300e_{d}-224-96.py',
    export='checkpoints/dino/dino_{m}_in1k_4xb64_300e_{d}-224-96.safetensors',
    values=dict(
        model=models,
        dataset={{_base_.datasets}}))
