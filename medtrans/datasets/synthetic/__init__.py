"""Synthetic copies of the datasets' on-disk layouts, for the fuzz tests and demos.

Production dataset modules never import this package. Each dataset class names its layout
function as a string, which only the fuzz tests and tools resolve (:func:`find_layout`):

.. code-block:: python

    # medtrans/datasets/aptos.py: the dataset, importing nothing from here
    @DATASETS.register_module()
    class APTOS2019Dataset(BaseDataset):
        SYNTHETIC_LAYOUT = 'medtrans.datasets.synthetic.aptos:aptos2019_layout'

    # medtrans/datasets/synthetic/aptos.py: one module per dataset family
    def aptos2019_layout(root: str) -> SyntheticLayout:
        ...  # write a tiny valid copy of the official layout under root (a few 32x32 images)
        return SyntheticLayout(
            root=root,
            dataset_cfg=dict(data_root=root),                 # builds the class over it
            pipeline=[dict(type='LoadImageStrict')],          # its loading transforms
            target_keys=('gt_label', ),                       # ground truth of a sample
            images=[...], label_tables=[...])                 # the files written, by kind

``tests/test_datasets/test_fuzz.py`` corrupts those files for every class registered in
:data:`medtrans.registry.DATASETS` (plugins included: a plugin points ``SYNTHETIC_LAYOUT`` at its
own module, ``'my_plugin.synthetic:my_layout'``). A registered class without ``SYNTHETIC_LAYOUT``,
or whose reference does not resolve, fails those tests: none opts out silently. A subclass
inherits its parent's layout unless it names its own.
"""
from .aptos import aptos2019_layout
from .classification import write_csv, write_images
from .csaw_s import csaw_s_layout, write_synthetic_csaw_s
from .custom import custom_cls_layout
from .isic2018 import (
    MANIFEST_NAME,
    is_complete_synthetic_isic2018,
    isic2018_task1_layout,
    make_synthetic_isic2018,
)
from .isic2019 import isic2019_layout
from .layout import (
    FILE_KINDS,
    LAYOUT_ATTRIBUTE,
    SyntheticLayout,
    find_layout,
    write_synthetic_layout,
)

__all__ = [
    'SyntheticLayout', 'LAYOUT_ATTRIBUTE', 'FILE_KINDS', 'find_layout', 'write_synthetic_layout',
    'make_synthetic_isic2018', 'is_complete_synthetic_isic2018', 'isic2018_task1_layout',
    'MANIFEST_NAME', 'aptos2019_layout', 'isic2019_layout', 'custom_cls_layout', 'write_images',
    'write_csv', 'csaw_s_layout', 'write_synthetic_csaw_s'
]
