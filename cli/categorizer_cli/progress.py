"""A progress line on stderr for long files: silent below a few thousand rows, throttled above.

On a terminal the line is rewritten in place; into a log (not a terminal) a line is printed at most
every LOG_INTERVAL seconds, so a CI log stays short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

SHOW_FROM_ROWS = 5_000
TTY_INTERVAL = 0.5
LOG_INTERVAL = 10.0


class Progress:
    def __init__(self, what: str, *, stream: TextIO | None = None, total: int | None = None,
                 show_from: int = SHOW_FROM_ROWS) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        self.total = total
        self.show_from = show_from
        self.started = time.monotonic()
        self._last = 0.0
        self._shown = False
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self, rows: int) -> str:
        elapsed = time.monotonic() - self.started
        rate = f", {rows / elapsed:,.0f} rows/s" if elapsed > 0 and rows else ""
        of = f" of ~{self.total:,}" if self.total else ""
        return f"{self.what}: {rows:,}{of} rows, {elapsed:.0f}s{rate}"

    def update(self, rows: int) -> None:
        if rows < self.show_from and (self.total is None or self.total < self.show_from):
            return
        now = time.monotonic()
        if now - self._last < (TTY_INTERVAL if self._tty else LOG_INTERVAL) and self._shown:
            return
        self._last = now
        self._shown = True
        if self._tty:
            self.stream.write("\r\x1b[2K" + self.line(rows))
        else:
            self.stream.write(self.line(rows) + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self._shown and self._tty:
            self.stream.write("\n")
            self.stream.flush()
