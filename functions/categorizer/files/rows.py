"""The row a reader hands to the pipeline, and the text columns rule shared by every format."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_TEXT_COLUMNS = ("text",)


@dataclass(slots=True)
class InputRow:
    """One data record. `record` is the list of CSV fields or the JSON object, kept as read."""

    row: int
    line: int | None
    record: list[str] | dict[str, Any]
    text: str
    raw: str  # the record as read, for the error report if classification rejects it


def parse_text_columns(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """'title, description' or ['title', 'description'] -> ('title', 'description'); default ('text',)."""
    if value is None:
        return DEFAULT_TEXT_COLUMNS
    parts = value.split(",") if isinstance(value, str) else list(value)
    columns = tuple(str(part).strip() for part in parts if str(part).strip())
    if not columns:
        return DEFAULT_TEXT_COLUMNS
    if len(set(columns)) != len(columns):
        raise ValueError(f"text columns repeat a name: {', '.join(columns)}")
    return columns


def describe_columns(columns: Sequence[str], limit: int = 50) -> str:
    shown = ", ".join(repr(column) for column in list(columns)[:limit])
    more = len(columns) - limit
    return shown + (f" (and {more} more)" if more > 0 else "") if columns else "(none)"
