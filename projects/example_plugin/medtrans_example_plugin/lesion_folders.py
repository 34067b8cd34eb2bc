"""A segmentation dataset a plugin adds: images and masks in two folders per split."""
import os
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
        FileNotFoundError: An image without its mask or a mask without its image, named.
    """

    METAINFO = dict(classes=('background', 'lesion'), palette=[[0, 0, 0], [255, 0, 0]])

    def __init__(self, split: str, **kwargs) -> None:
        self.split = split
        super().__init__(img_suffix='.png', seg_map_suffix='.png',
                         data_prefix=dict(img_path=osp.join(split, 'images'),
                                          seg_map_path=osp.join(split, 'masks')), **kwargs)

    def load_data_list(self) -> List[dict]:
        """One sample per name found in either folder; each needs both its files.

        Raises:
            FileNotFoundError: A folder is missing, or a name has no image or no mask file.
        """
        folders = (self.data_prefix['img_path'], self.data_prefix['seg_map_path'])
        for folder in folders:
            if not osp.isdir(folder):
                raise FileNotFoundError(f'LesionFolderDataset: folder {folder} not found')
        names = sorted({name for folder in folders for name in os.listdir(folder)
                        if name.endswith('.png')})
        data_list = []
        for name in names:
            img_path, mask_path = (osp.join(folder, name) for folder in folders)
            for path, kind in ((img_path, 'image'), (mask_path, 'mask')):
                if not osp.isfile(path):
                    raise FileNotFoundError(f'LesionFolderDataset: {name} has no {kind} file '
                                            f'{path}')
            data_list.append(dict(img_path=img_path, seg_map_path=mask_path,
                                  label_map=self.label_map, reduce_zero_label=False,
                                  seg_fields=[], sample_id=osp.splitext(name)[0]))
        return data_list
