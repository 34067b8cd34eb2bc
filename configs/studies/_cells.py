# What the study specs share: the classification columns of Tables 1, 3, 4 and 5 (display
# name -> config name part), the initialisation rows of Tables 1 and 3, and the DINO
# pretrainings their ImageNet+DINO rows start from (exported where those configs read them).
datasets = {
    'APTOS2019': dict(d='aptos2019'),
    'CBIS-DDSM': dict(d='cbis-ddsm'),
    'ISIC2019': dict(d='isic2019'),
    'CheXpert': dict(d='chexpert'),
    'PCam': dict(d='pcam'),
}
inits = {'random': dict(i='random'), 'ImageNet': dict(i='in1k'),
         'ImageNet+DINO': dict(i='in1k-dino')}
dino_config = 'configs/dino/dino_{m}_in1k_4xb64_300e_{d}-224-96.py'
dino_export = 'checkpoints/dino/dino_{m}_in1k_4xb64_300e_{d}-224-96.safetensors'
