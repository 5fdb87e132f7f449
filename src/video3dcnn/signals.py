"""Signal handlers that hold for one block of code.

``handling_signal`` sets a handler for the length of a ``with`` block and puts the previous one back: ``video3dcnn
process`` turns SIGTERM (``docker stop``, a stopped SageMaker job) into the clean-up path of Ctrl-C, and processing
starts its fork server with Ctrl-C ignored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def handling_signal(signum: int, handler: Callable | int) -> Iterator[None]:
    """Handle ``signum`` with ``handler`` inside the block, then as before; elsewhere than in the main thread, which
    alone may set handlers, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)
