"""Log records held back from MMEngine's logger: notices a user cannot act on, printed by the
stack on every run."""
import contextlib
import logging
from typing import Callable, Iterator, List

from mmengine.logging import MMLogger

__all__ = ['held_back_logs', 'not_file_client_notice']

#: Starts of the deprecation notices of MMEngine 0.10's ``FileClient``, which its
#: ``CheckpointHook`` and ``save_checkpoint`` build at every run and no longer use (kept "until
#: MMEngine 1.0"): nothing the user's config can change.
_FILE_CLIENT_NOTICES = ('"FileClient" will be deprecated', '"HardDiskBackend" is the alias')


def not_file_client_notice(record: logging.LogRecord) -> bool:
    """A logger filter that drops MMEngine's ``FileClient`` deprecation notices."""
    return not str(record.msg).startswith(_FILE_CLIENT_NOTICES)


@contextlib.contextmanager
def held_back_logs(match: Callable[[str], bool]) -> Iterator[List[str]]:
    """Hold back the records of MMEngine's current logger whose message ``match`` accepts.

    Yields:
        list[str]: The messages held back, as they come, for a summary in their place.
    """
    logger = MMLogger.get_current_instance()
    held: List[str] = []

    def keep(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if match(message):
            held.append(message)
            return False
        return True

    logger.addFilter(keep)
    try:
        yield held
    finally:
        logger.removeFilter(keep)
