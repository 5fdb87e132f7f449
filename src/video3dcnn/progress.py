"""Progress reporting: a tqdm bar on a terminal, plain periodic log lines otherwise (CloudWatch, docker logs)."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

logger = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """Count finished items of a known total.

    On a terminal this draws a tqdm bar on ``stream``; elsewhere it logs ``done/total``, the rate and the time left
    every ``interval`` seconds and once at the end, because a bar's carriage returns make unreadable logs.

    Use as a context manager; call ``update()`` once per finished item.
    """

    def __init__(self, total: int, what: str = "videos", interval: float = 30.0, stream: TextIO | None = None) -> None:
        self.total = total
        self.what = what
        self.interval = interval
        self.done = 0
        self._stream = stream or sys.stderr
        self._bar = None
        self._start = self._last = time.monotonic()

    def __enter__(self) -> Progress:
        if self._stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit=self.what.rstrip("s"), file=self._stream, dynamic_ncols=True)
        return self

    def update(self, count: int = 1) -> None:
        """Record ``count`` more finished items."""
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            logger.info("%s", self.line())

    def line(self) -> str:
        """A one-line summary: done/total, percentage, rate and time left."""
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        percent = 100.0 * self.done / self.total if self.total else 100.0
        return f"{self.done}/{self.total} {self.what} ({percent:.0f}%), {rate:.2f}/s, {_duration(left)} left"

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            logger.info("%s in %s", self.line().split(",")[0], _duration(time.monotonic() - self._start))
