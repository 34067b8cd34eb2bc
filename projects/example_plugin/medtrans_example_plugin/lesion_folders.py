"""A segmentation dataset a plugin adds: images and masks in two folders per split."""
import os.path as osp
from typing import List

from mmseg.datasets import BaseSegDataset

from medtrans.registry import DATASETS


@DATASETS.register_module()
class LesionFolderDataset(BaseSegDataset):
    """``<data_root>/<split>/images/<name>.png`` with ``<data_root>/<split>/masks/<name>.png``
    (binary, 0/255), for a user's own lesion set.

    Args:
        split (str): ``'train'`` or ``'val'`` (the folder under ``data_root``).
        **kwargs: As :class:`mmseg.datasets.BaseSegDataset` (``data_root``, ``pipeline``...).

    Raises:
        FileNotFoundError: An image without its mask, named.
    """

    METAINFO = dict(classes=('background', 'lesion'), palette=[[0, 0, 0], [255, 0, 0]])

    def __init__(self, split: str, **kwargs) -> None:
        self.split = split
        super().__init__(img_suffix='.png', seg_map_suffix='.png',
                         data_prefix=dict(img_path=osp.join(split, 'images'),
                                          seg_map_path=osp.join(split, 'masks')), **kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        for info in data_list:
            if not osp.isfile(info['seg_map_path']):
                raise FileNotFoundError(f'{info["img_path"]}: its mask {info["seg_map_path"]} '
                                        'is missing')
            info['sample_id'] = osp.splitext(osp.basename(info['img_path']))[0]
        return data_list
