from .dino_hook import DINOHook
from .metrics_json_hook import MetricsJsonHook
from .safe_resume_hook import SafeResumeHook

__all__ = ['MetricsJsonHook', 'SafeResumeHook', 'DINOHook']
