"""Analyses of data, runs and models (importable; ``tools/analysis/*`` are their command lines)."""
from .agreement import annotator_agreement

__all__ = ['annotator_agreement']
