"""Progress on a terminal: a bar with rate and ETA on stderr, nothing when it is not a TTY."""

from __future__ import annotations

import sys
import time

_line_open = False  # a bar is drawn and its line not yet ended


def end_open_line() -> None:
    """End a half-drawn progress line, so that a message printed next starts on its own line."""
    global _line_open
    if _line_open:
        sys.stderr.write("\n")
        sys.stderr.flush()
        _line_open = False


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Tracks done/total bytes; draws a bar on stderr when it is a terminal."""

    def __init__(self, total: int, label: str, *, enabled: bool | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.done = 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self._last = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        t = time.monotonic()
        if self.enabled and t - self._last > 0.2:
            self._last = t
            self._draw(t)

    def line(self, t: float) -> str:
        """The bar as text: label, bar, percent, MiB/s, ETA."""
        frac = min(self.done / self.total, 1.0)
        elapsed = max(t - self.start, 1e-6)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 and frac < 1 else 0.0
        bar = "#" * int(frac * 30)
        return (f"{self.label} [{bar:<30}] {frac * 100:5.1f}% {rate / (1 << 20):7.1f} MiB/s "
                f"ETA {_eta(left)}")

    def _draw(self, t: float) -> None:
        global _line_open
        sys.stderr.write("\r" + self.line(t))
        sys.stderr.flush()
        _line_open = True

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            end_open_line()
