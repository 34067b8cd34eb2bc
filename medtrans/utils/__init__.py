from .compat import (
                     UnsafeCheckpointError,
                     apply_compat,
                     export_local_rank,
                     init_cpu_distributed,
                     safe_load,
                     use_cpu_distributed,
)

__all__ = [
    'apply_compat', 'safe_load', 'UnsafeCheckpointError', 'init_cpu_distributed',
    'use_cpu_distributed', 'export_local_rank'
]
