"""The row a reader hands to the pipeline, and the text columns rule shared by every format."""

from __future__ import annotations

import shlex
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
    cells: tuple[Any, ...] | None = None  # a spreadsheet row's typed values (numbers, dates) for the workbook


def parse_text_columns(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """The text columns as a user writes them, the same everywhere (CLI flags, object metadata, config).

    'title,description', 'title description', 'title, description' and ['title', 'description'] (or
    ['title,description']) all mean ('title', 'description'). A name that contains a comma or a space is
    quoted: '"last, first",notes'. None or nothing -> the default ('text',). Raises ValueError for an
    unbalanced quote or a repeated name.
    """
    if value is None:
        return DEFAULT_TEXT_COLUMNS
    columns = tuple(name for part in ([value] if isinstance(value, str) else value)
                    for name in _split_names(str(part)))
    if not columns:
        return DEFAULT_TEXT_COLUMNS
    if len(set(columns)) != len(columns):
        raise ValueError(f"text columns repeat a name: {', '.join(columns)}")
    return columns


def _split_names(value: str) -> list[str]:
    lexer = shlex.shlex(value, posix=True)
    lexer.whitespace += ","
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return [name.strip() for name in lexer if name.strip()]
    except ValueError as exc:  # shlex: "No closing quotation"
        raise ValueError(f"text columns {value!r}: {exc} (quote a name that contains a comma: "
                         '\'"last, first",notes\')') from None


def describe_columns(columns: Sequence[str], limit: int = 50) -> str:
    shown = ", ".join(repr(column) for column in list(columns)[:limit])
    more = len(columns) - limit
    return shown + (f" (and {more} more)" if more > 0 else "") if columns else "(none)"
