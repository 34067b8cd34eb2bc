from .classification import BalancedRecallMetric, CohenKappaMetric, ROCAUCMetric
from .dump_predictions_csv import DumpPredictionsCsv
from .dump_seg_counts_csv import DumpSegCountsCsv
from .dump_seg_masks import DumpSegMasks
from .lesion_seg_metric import LesionSegMetric

__all__ = ['LesionSegMetric', 'CohenKappaMetric', 'ROCAUCMetric', 'BalancedRecallMetric',
           'DumpPredictionsCsv', 'DumpSegCountsCsv', 'DumpSegMasks']
