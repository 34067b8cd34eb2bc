from .compat import (
                     UnsafeCheckpointError,
                     apply_compat,
                     init_cpu_distributed,
                     safe_load,
                     use_cpu_distributed,
)
from .setup_env import load_plugins, register_all_modules

__all__ = [
    'apply_compat', 'safe_load', 'UnsafeCheckpointError', 'init_cpu_distributed',
    'use_cpu_distributed', 'register_all_modules', 'load_plugins'
]
