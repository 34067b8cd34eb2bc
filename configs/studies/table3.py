# Table 3: k-NN (k=200, cosine) of frozen embeddings, 2 models x 3 initialisations x 5 datasets.
# k-NN is deterministic, so one run per cell.
#   python tools/run_study.py configs/studies/table3.py [--dry-run]
_base_ = ['./_datasets.py']
seeds = [0]
grid = dict(
    table='Table 3',
    row='{init} {model}',
    column='{dataset}',
    config='configs/knn/{m}/knn_{m}_{i}_1xb64_{d}-224.py',
    values=dict(
        init={'random': dict(i='random'), 'ImageNet': dict(i='in1k'),
              'ImageNet+DINO': dict(i='in1k-dino')},
        model={'ResNet50': dict(m='resnet50'), 'DeiT-S': dict(m='deit-s')},
        dataset={{_base_.datasets}}))
