"""Write each test sample's id, ground truth and class probabilities to a CSV file."""
import csv
import io
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from medtrans.fileio import atomic_write_text
from medtrans.registry import METRICS

__all__ = ['DumpPredictionsCsv']


@METRICS.register_module()
class DumpPredictionsCsv(BaseMetric):
    """Save classification predictions as CSV, so users can compute their own statistics.

    ``tools/test.py --out preds.csv`` adds it to the test evaluator. One row per sample, in
    dataset order (MMEngine gathers the ranks' results and drops a distributed sampler's
    padding), written atomically by the main process. Columns:

    * ``sample_id``: the data sample's ``sample_id`` (medtrans datasets pack it), else its
      ``img_path``, else its index in the dataset;
    * single-label (the sample has ``gt_label``): ``gt_label`` (class index) and ``pred_label``
      (argmax); multi-label (``gt_score`` only): ``gt_<class>`` per class (1, 0, or -1 for an
      entry the dataset marked ignored); samples without ground truth (new images, as
      ``tools/infer.py`` predicts on): ``pred_label`` only, no ground-truth column;
    * ``prob_<class>`` per class: the model's probability (softmax or sigmoid).

    MMEngine's ``DumpResults`` pickles whole data samples, which needs unpickling to read; a
    CSV is read by any tool.

    Args:
        out_file (str): Path of the CSV file; must end with ``.csv``.
        collect_device (str): Device used to gather results across ranks. Defaults to 'cpu'.
        collect_dir (str, optional): Shared folder for 'cpu' gathering. Defaults to None.
    """

    # It returns no metric to name: no prefix (MMEngine warns where the prefix is None).
    default_prefix = ''

    def __init__(self, out_file: str, collect_device: str = 'cpu',
                 collect_dir: Optional[str] = None) -> None:
        if not str(out_file).endswith('.csv'):
            raise ValueError(f'DumpPredictionsCsv: out_file must end with .csv, got {out_file!r}')
        super().__init__(collect_device=collect_device, collect_dir=collect_dir)
        self.out_file = str(out_file)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            name = sample.get('sample_id', sample.get('img_path', sample.get('sample_idx')))
            if 'pred_score' not in sample:
                raise ValueError(
                    f'{name}: the data sample has no "pred_score"; --out writes class '
                    'probabilities of classification models only.')
            result = dict(sample_id=str(name), prob=_as_list(sample['pred_score']))
            # Single-label samples hold gt_label (mmpretrain's preprocessor may add a one-hot
            # gt_score beside it); multi-label ones hold gt_score only.
            if 'gt_label' in sample:
                result['gt_label'] = int(torch.as_tensor(sample['gt_label']).reshape(-1)[0])
            elif 'gt_score' in sample:
                result['gt'] = _as_list(sample['gt_score'])
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        num_classes = len(results[0]['prob']) if results else 0
        classes = list(self.dataset_meta.get('classes', [])) if self.dataset_meta else []
        if len(classes) != num_classes:
            classes = [str(i) for i in range(num_classes)]
        multi_label = bool(results) and 'gt' in results[0]
        labelled = any('gt_label' in r for r in results)
        header = ['sample_id']
        if multi_label:
            header += [f'gt_{c}' for c in classes]
        else:
            header += ['gt_label', 'pred_label'] if labelled else ['pred_label']
        header += [f'prob_{c}' for c in classes]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator='\n')
        writer.writerow(header)
        for r in results:
            if multi_label:
                truth = [_number(v) for v in r['gt']]
            else:
                best = max(range(num_classes), key=r['prob'].__getitem__)
                truth = [r.get('gt_label', ''), best] if labelled else [best]
            writer.writerow([r['sample_id'], *truth, *(repr(p) for p in r['prob'])])
        atomic_write_text(self.out_file, buffer.getvalue())
        print_log(f'Wrote the predictions of {len(results)} samples to {self.out_file}',
                  logger='current')
        return {}


def _as_list(value) -> List[float]:
    return torch.as_tensor(value).detach().reshape(-1).double().cpu().tolist()


def _number(value: float):
    return int(value) if float(value).is_integer() else value
