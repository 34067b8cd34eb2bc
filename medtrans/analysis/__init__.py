"""Analyses of data, runs and models (importable; ``tools/analysis/*`` are their command lines)."""
from .agreement import annotator_agreement
from .attention import (
    AttentionRecorder,
    attention_distances,
    cls_attention_maps,
    keep_attention_mass,
    mean_attention_distance,
)
from .explain import explain_images, grad_cam, heatmap_overlay
from .paper import PAPER_RESULTS
from .study import Study, StudyRun, load_study, run_study
from .summary import collect_results, summarize, write_tables

__all__ = [
    'annotator_agreement', 'AttentionRecorder', 'attention_distances', 'cls_attention_maps',
    'keep_attention_mass', 'mean_attention_distance', 'explain_images', 'grad_cam',
    'heatmap_overlay', 'PAPER_RESULTS', 'Study', 'StudyRun', 'load_study', 'run_study',
    'collect_results', 'summarize', 'write_tables'
]
