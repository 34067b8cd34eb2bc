"""The study's reported results (medians over 5 runs), as the summaries place them beside ours.

Keys are ``(table, row, column)`` as the study specs in ``configs/studies/`` name their cells;
values as printed in the paper's Tables 1-5. The paper gives Table 3's random rows only as "near
chance", and of Tables 4 and 5 only the cells here.
"""
from typing import Dict, Tuple

__all__ = ['PAPER_RESULTS', 'PARAMETERS']

_COLUMNS = ('APTOS2019', 'CBIS-DDSM', 'ISIC2019', 'CheXpert', 'PCam')


def _rows(table: str, rows: Dict[str, Tuple[float, ...]]) -> Dict[Tuple[str, str, str], float]:
    return {(table, row, column): value
            for row, values in rows.items() for column, value in zip(_COLUMNS, values)}


#: (table, row, column) -> the paper's median.
PAPER_RESULTS: Dict[Tuple[str, str, str], float] = {
    **_rows('Table 1', {
        'random Inception': (0.834, 0.922, 0.664, 0.794, 0.953),
        'random ResNet50': (0.849, 0.916, 0.660, 0.796, 0.943),
        'random DeiT-S': (0.687, 0.906, 0.579, 0.762, 0.921),
        'random Swin-T': (0.679, 0.898, 0.619, 0.780, 0.936),
        'ImageNet Inception': (0.876, 0.943, 0.760, 0.797, 0.958),
        'ImageNet ResNet50': (0.893, 0.954, 0.810, 0.801, 0.960),
        'ImageNet DeiT-S': (0.896, 0.949, 0.844, 0.794, 0.964),
        'ImageNet Swin-T': (0.904, 0.965, 0.832, 0.805, 0.968),
        'ImageNet+DINO Inception': (0.881, 0.942, 0.774, 0.797, 0.960),
        'ImageNet+DINO ResNet50': (0.894, 0.955, 0.833, 0.801, 0.962),
        'ImageNet+DINO DeiT-S': (0.896, 0.956, 0.853, 0.801, 0.976),
        'ImageNet+DINO Swin-T': (0.907, 0.964, 0.860, 0.809, 0.969),
    }),
    ('Table 2', 'DeepLabV3 ResNet50', 'ISIC2018'): 0.802,
    ('Table 2', 'DeepLabV3 ResNet50', 'CSAW-S'): 0.320,
    ('Table 2', 'DeepLabV3 DeiT-S', 'ISIC2018'): 0.845,
    ('Table 2', 'DeepLabV3 DeiT-S', 'CSAW-S'): 0.322,
    **_rows('Table 3', {
        'ImageNet ResNet50': (0.676, 0.874, 0.248, 0.682, 0.896),
        'ImageNet DeiT-S': (0.687, 0.856, 0.242, 0.675, 0.892),
        'ImageNet+DINO ResNet50': (0.786, 0.897, 0.338, 0.697, 0.907),
        'ImageNet+DINO DeiT-S': (0.781, 0.898, 0.637, 0.739, 0.953),
    }),
    ('Table 4', 'ResNet18', 'ISIC2019'): 0.785,
    ('Table 4', 'ResNet50', 'ISIC2019'): 0.810,
    ('Table 4', 'ResNet152', 'ISIC2019'): 0.798,
    ('Table 4', 'DeiT-T', 'ISIC2019'): 0.810,
    ('Table 4', 'DeiT-S', 'ISIC2019'): 0.844,
    ('Table 4', 'DeiT-B', 'ISIC2019'): 0.840,
    ('Table 5', 'DeiT-S 16x16', 'CheXpert'): 0.794,
    ('Table 5', 'DeiT-S 8x8', 'CheXpert'): 0.800,
}

#: Parameters (millions) of the backbones of Table 4, for the capacity figure (Figure 3):
#: timm's models without classifier, counted with ``timm.create_model(name, num_classes=0)``.
PARAMETERS: Dict[str, float] = {
    'ResNet18': 11.2, 'ResNet50': 23.5, 'ResNet152': 58.1,
    'DeiT-T': 5.5, 'DeiT-S': 21.7, 'DeiT-B': 85.8,
}
