"""Which columns hold the text, per file (object metadata) or per prefix (a small config object).

Precedence: `x-amz-meta-text-columns` on the object, then the nearest `_categorizer.json` from the
object's folder up to the ingest prefix, then the default `text`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from categorizer.batch.keys import CONFIG_OBJECT_NAME
from categorizer.files.errors import FileFailure
from categorizer.files.rows import DEFAULT_TEXT_COLUMNS, parse_text_columns

METADATA_KEY = "text-columns"  # x-amz-meta-text-columns
MAX_TEXT_COLUMNS = 20


def config_keys(key: str, ingest_prefix: str) -> list[str]:
    """Candidate config objects, nearest first: ingest/a/b/f.csv -> ingest/a/b/_c.json, ingest/a/_c.json, ..."""
    folders = key[len(ingest_prefix):].split("/")[:-1]
    return [ingest_prefix + "".join(f"{folder}/" for folder in folders[:depth]) + CONFIG_OBJECT_NAME
            for depth in range(len(folders), -1, -1)]


def _checked(columns: tuple[str, ...], source: str) -> tuple[str, ...]:
    if len(columns) > MAX_TEXT_COLUMNS:
        raise FileFailure("invalid_text_columns", f"{source} names {len(columns)} text columns "
                                                  f"(at most {MAX_TEXT_COLUMNS})")
    return columns


def resolve_text_columns(*, key: str, metadata: dict[str, str], ingest_prefix: str,
                         read_config: Callable[[str], bytes | None]) -> tuple[tuple[str, ...], str]:
    """The text columns for one object and where they came from (for the manifest)."""
    if metadata.get(METADATA_KEY, "").strip():
        try:
            return _checked(parse_text_columns(metadata[METADATA_KEY]), "metadata"), "metadata"
        except ValueError as exc:
            raise FileFailure("invalid_text_columns", f"x-amz-meta-{METADATA_KEY}: {exc}") from exc
    for config_key in config_keys(key, ingest_prefix):
        raw = read_config(config_key)
        if raw is None:
            continue
        try:
            config = json.loads(raw)
            value = config["text_columns"]
            if not isinstance(value, str | list) or (isinstance(value, list) and
                                                     not all(isinstance(v, str) for v in value)):
                raise TypeError("text_columns must be a string or a list of strings")
            return _checked(parse_text_columns(value), config_key), config_key
        except (ValueError, KeyError, TypeError) as exc:
            raise FileFailure("invalid_config", f"{config_key} must be JSON like "
                                                f'{{"text_columns": ["title", "description"]}} ({exc})') from exc
    return DEFAULT_TEXT_COLUMNS, "default"
