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

__all__ = [
    'annotator_agreement', 'AttentionRecorder', 'attention_distances', 'cls_attention_maps',
    'keep_attention_mass', 'mean_attention_distance', 'explain_images', 'grad_cam',
    'heatmap_overlay'
]
