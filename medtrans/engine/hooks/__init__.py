from .checkpoint_hook import CrashSafeCheckpointHook
from .dino_hook import DINOHook
from .metrics_json_hook import MetricsJsonHook
from .preemption_hook import EXIT_PREEMPTED, PreemptionHook
from .safe_resume_hook import SafeResumeHook
from .split_record_hook import SplitRecordHook

__all__ = [
    'MetricsJsonHook', 'SafeResumeHook', 'DINOHook', 'SplitRecordHook', 'CrashSafeCheckpointHook',
    'PreemptionHook', 'EXIT_PREEMPTED'
]
