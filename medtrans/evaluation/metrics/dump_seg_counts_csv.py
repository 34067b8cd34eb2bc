"""Write each test image's pixel counts (true positives, false positives, false negatives)."""
import csv
import io
from typing import Any, Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from medtrans.evaluation.functional.segmentation import binary_confusion, check_ignore_index
from medtrans.fileio import atomic_write_text
from medtrans.registry import METRICS

__all__ = ['DumpSegCountsCsv']


@METRICS.register_module()
class DumpSegCountsCsv(BaseMetric):
    """Save each image's binary confusion counts as CSV, the per-image record of segmentation.

    ``tools/test.py --out counts.csv`` adds it to the test evaluator of segmentation configs
    (classification configs get :class:`DumpPredictionsCsv`). One row per image, in dataset
    order, written atomically by the main process: ``sample_id`` (the image path), ``tp``,
    ``fp``, ``fn`` (pixels at the ground truth's size, ``ignore_index`` pixels left out). Every
    score of ``LesionSegMetric`` follows from these counts, on any subset of the images (the
    study summaries' bootstrap intervals resample them).

    Args:
        out_file (str): Path of the CSV file; must end with ``.csv``.
        ignore_index (int): Ground-truth label of unscored pixels. Defaults to 255.
        collect_device (str): Device used to gather results across ranks. Defaults to 'cpu'.
        collect_dir (str, optional): Shared folder for 'cpu' gathering. Defaults to None.
    """

    # It returns no metric to name: no prefix (MMEngine warns where the prefix is None).
    default_prefix = ''

    def __init__(self, out_file: str, ignore_index: int = 255, collect_device: str = 'cpu',
                 collect_dir: Optional[str] = None) -> None:
        if not str(out_file).endswith('.csv'):
            raise ValueError(f'DumpSegCountsCsv: out_file must end with .csv, got {out_file!r}')
        check_ignore_index(ignore_index)
        super().__init__(collect_device=collect_device, collect_dir=collect_dir)
        self.out_file = str(out_file)
        self.ignore_index = ignore_index

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            name = str(sample.get('img_path', sample.get('sample_idx')))
            if 'pred_sem_seg' not in sample or 'gt_sem_seg' not in sample:
                raise ValueError(f'{name}: DumpSegCountsCsv needs pred_sem_seg and gt_sem_seg '
                                 '(segmentation outputs with ground truth).')
            tp, fp, fn, _ = binary_confusion(sample['pred_sem_seg']['data'],
                                             sample['gt_sem_seg']['data'], self.ignore_index)
            self.results.append((name, tp, fp, fn))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator='\n')
        writer.writerow(['sample_id', 'tp', 'fp', 'fn'])
        writer.writerows(results)
        atomic_write_text(self.out_file, buffer.getvalue())
        print_log(f'Wrote the pixel counts of {len(results)} images to {self.out_file}',
                  logger='current')
        return {}
