"""Helpers for tests, tools and demos: synthetic copies of the datasets' on-disk layouts.

Not product code: nothing in ``medtrans`` outside this package imports it (it imports
``medtrans`` freely). A *layout function* writes a tiny valid copy of a dataset's official
layout under a folder and says how to read it:

.. code-block:: python

    # medtrans/testing/layouts/aptos.py: one module per dataset family
    def aptos2019_layout(root: str) -> SyntheticLayout:
        ...  # write a tiny valid copy of the official layout under root (a few 32x32 images)
        return SyntheticLayout(
            root=root,
            dataset_cfg=dict(data_root=root),                 # builds the class over it
            pipeline=[dict(type='LoadImageStrict')],          # its loading transforms
            target_keys=('gt_label', ),                       # ground truth of a sample
            images=[...], label_tables=[...])                 # the files written, by kind

Dataset classes do not name their layouts; :func:`find_layout` looks the class name up, walking
the MRO (a subclass inherits its parent's layout unless it has its own), in

* :data:`MEDTRANS_LAYOUTS` (``medtrans/testing/layouts/__init__.py``) for medtrans' own
  datasets: ``'APTOS2019Dataset': aptos2019_layout``;
* the entry-point group ``medtrans.synthetic_layouts`` (:data:`ENTRY_POINT_GROUP`) for a
  third-party package, whose product code then never imports this package; in its
  ``setup.cfg``::

      [options.entry_points]
      medtrans.synthetic_layouts =
          MyDataset = my_plugin.synthetic:my_layout

``tests/test_datasets/test_fuzz.py`` corrupts those files for every class registered in
:data:`medtrans.registry.DATASETS`, plugins included. A registered class without a layout fails
those tests: none opts out silently.
"""
from .find import ENTRY_POINT_GROUP, find_layout, plugin_layouts, write_synthetic_layout
from .layouts import (
    FILE_KINDS,
    MANIFEST_NAME,
    MEDTRANS_LAYOUTS,
    SyntheticLayout,
    aptos2019_layout,
    cbis_ddsm_layout,
    chexpert_layout,
    csaw_s_layout,
    custom_cls_layout,
    is_complete_synthetic_isic2018,
    isic2018_task1_layout,
    isic2019_layout,
    make_synthetic_isic2018,
    pcam_layout,
    write_csv,
    write_images,
    write_synthetic_csaw_s,
)

__all__ = [
    'SyntheticLayout', 'FILE_KINDS', 'MEDTRANS_LAYOUTS', 'ENTRY_POINT_GROUP', 'plugin_layouts',
    'find_layout', 'write_synthetic_layout', 'make_synthetic_isic2018',
    'is_complete_synthetic_isic2018', 'isic2018_task1_layout', 'MANIFEST_NAME',
    'aptos2019_layout', 'isic2019_layout', 'custom_cls_layout', 'chexpert_layout',
    'cbis_ddsm_layout', 'pcam_layout', 'csaw_s_layout', 'write_synthetic_csaw_s',
    'write_images', 'write_csv'
]
