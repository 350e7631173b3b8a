"""How several text columns become the one text the model sees (training and serving use this same rule)."""

from __future__ import annotations

from collections.abc import Sequence

SEPARATOR = ". "


def join_text_columns(values: Sequence[object]) -> str:
    """Join the non-empty column values with ". ", e.g. a title and a description."""
    parts = [str(value).strip() for value in values if value is not None and str(value).strip()]
    return SEPARATOR.join(parts)
