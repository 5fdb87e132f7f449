"""Signal handlers that hold for one block of code, and a stop request that waits for a safe point.

``handling_signal`` sets a handler for the length of a ``with`` block and puts the previous one back: ``video3dcnn
process`` turns SIGTERM (``docker stop``, a stopped SageMaker job) into the clean-up path of Ctrl-C, and processing
starts its fork server with Ctrl-C ignored. ``StopRequest`` lets ``video3dcnn train`` finish the batch in flight and
write a checkpoint before it stops (docs/training.md, "Stopping and resuming").
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


class Stopped(KeyboardInterrupt):
    """The run stopped because a signal asked it to; ``signum`` is the signal (the CLI exits with 128 + it).

    A ``KeyboardInterrupt``, so that no ``except Exception`` on the way swallows it.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class StopRequest:
    """SIGTERM (``docker stop``, StopTrainingJob, a spot reclaim) as a request to stop at the next safe point.

    Install it with ``handling_signal(signal.SIGTERM, request)``. Outside ``deferring()`` a signal raises ``Stopped`` at
    once (nothing is in flight that must be saved first); inside, it is only recorded, and the code in the block polls
    ``requested`` at its safe points (training: a batch boundary, where a checkpoint can be written) and raises
    ``stopped()`` itself. Repeated signals are recorded once.

    Attributes:
        meanwhile: what the reason says when a signal interrupts at once (what was, or was not, saved).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.meanwhile = "nothing was in progress that needed saving"
        self._deferring = 0

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def stopped(self, what: str = "") -> Stopped:
        """The exception that ends the run, its message the one-line reason (``what``: what was saved)."""
        name = signal.Signals(self.signum or signal.SIGTERM).name
        reason = f"stopped by {name} (docker stop, StopTrainingJob or a spot reclaim)"
        return Stopped(f"{reason}; {what}" if what else reason, self.signum or signal.SIGTERM)

    def __call__(self, signum: int, frame: object = None) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        if first and not self._deferring:
            raise self.stopped(self.meanwhile)

    @contextlib.contextmanager
    def deferring(self) -> Iterator[None]:
        """Inside the block a signal is only recorded; a signal that came before raises at once."""
        if self.requested:
            raise self.stopped(self.meanwhile)
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
