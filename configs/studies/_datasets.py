# The classification columns of Tables 1, 3, 4 and 5: display name -> config name part.
datasets = {
    'APTOS2019': dict(d='aptos2019'),
    'CBIS-DDSM': dict(d='cbis-ddsm'),
    'ISIC2019': dict(d='isic2019'),
    'CheXpert': dict(d='chexpert'),
    'PCam': dict(d='pcam'),
}
