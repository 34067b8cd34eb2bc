from .atomic import (
    ATOMIC_BACKEND,
    AtomicLocalBackend,
    atomic_write_bytes,
    atomic_write_text,
    register_atomic_backend,
    remove_stale_temporaries,
)
from .safe_load import (
    UnsafeCheckpointError,
    checkpoint_meta,
    install_safe_checkpoint_loader,
    safe_load,
)

__all__ = [
    'atomic_write_bytes', 'atomic_write_text', 'AtomicLocalBackend', 'ATOMIC_BACKEND',
    'register_atomic_backend', 'safe_load', 'checkpoint_meta', 'UnsafeCheckpointError',
    'install_safe_checkpoint_loader', 'remove_stale_temporaries'
]
