"""Progress reporting: a bar on a terminal, nothing otherwise, structured callbacks for the service."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


class Progress:
    """Tracks done/total bytes; draws a bar on stderr when it is a terminal."""

    def __init__(
        self,
        total: int,
        label: str,
        *,
        enabled: bool | None = None,
        callback: Callable[[int, int], None] | None = None,
    ) -> None:
        self.total = max(total, 1)
        self.label = label
        self.done = 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.callback = callback
        self.start = time.monotonic()
        self._last = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        if self.callback:
            self.callback(self.done, self.total)
        t = time.monotonic()
        if self.enabled and t - self._last > 0.2:
            self._last = t
            self._draw(t)

    def _draw(self, t: float) -> None:
        frac = min(self.done / self.total, 1.0)
        rate = self.done / max(t - self.start, 1e-6) / 1e6
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}% {rate:7.1f} MB/s")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            sys.stderr.write("\n")
            sys.stderr.flush()
