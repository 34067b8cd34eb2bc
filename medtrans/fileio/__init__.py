from .atomic import AtomicLocalBackend, atomic_write_bytes, atomic_write_text

__all__ = ['atomic_write_bytes', 'atomic_write_text', 'AtomicLocalBackend']
