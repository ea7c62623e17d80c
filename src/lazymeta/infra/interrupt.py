"""Ctrl-C and SIGTERM end a training run cleanly: the loop finishes its step, writes a checkpoint and
stops with :class:`Interrupted` (the command line says how to resume and exits 130). A second signal
stops at once."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from lazymeta.infra.errors import LazymetaError

EXIT_CODE = 130  # 128 + SIGINT, the shell's convention for a run stopped by Ctrl-C


class Interrupted(LazymetaError):
    """Training stopped on a signal after writing a checkpoint; the message says how to resume."""


class StopRequest:
    """Set by the first SIGINT/SIGTERM; the training loop checks it between steps."""

    def __init__(self) -> None:
        self.requested = False


@contextlib.contextmanager
def stop_on_signal() -> Iterator[StopRequest]:
    """Within the block, the first SIGINT/SIGTERM only sets ``requested``; the second raises KeyboardInterrupt.
    Outside the main thread (signals cannot be caught there) nothing is installed."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: object) -> None:
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
