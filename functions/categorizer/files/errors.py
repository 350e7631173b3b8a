"""What can go wrong with a file: a whole-file failure, or one rejected row (the rest still classified)."""

from __future__ import annotations

import re
from dataclasses import dataclass

EXCERPT_CHARS = 200
# Bytes that are not UTF-8 are read with errors="surrogateescape": they become U+DC80..U+DCFF.
UNDECODABLE = re.compile("[\udc80-\udcff]")


class FileFailure(Exception):
    """The file as a whole cannot be processed (unknown format, missing column, bomb, too large...).

    `reason` is a stable machine-readable code; `message` says what to fix.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class RowError:
    """One input record that was rejected. `row` counts data records from 1; `line` is where it starts."""

    row: int | None  # None for a whole-file failure in an error report
    line: int | None
    reason: str
    message: str
    excerpt: str


def excerpt(raw: str, limit: int = EXCERPT_CHARS) -> str:
    """A short, valid-UTF-8 view of a raw record: undecodable bytes show as U+FFFD, NUL as U+2400."""
    text = raw[:limit].rstrip("\r\n")
    if UNDECODABLE.search(text):
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text.replace("\x00", "\u2400")
