"""File formats recognised from the file name, the limits that apply to every file, and output names."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from categorizer.files.errors import FileFailure

DEFAULT_MAX_BYTES = 512 * 1024 * 1024


class FileFormat(enum.StrEnum):
    CSV = "csv"
    JSON = "json"  # one JSON array of objects
    JSONL = "jsonl"  # one JSON object per line


_EXTENSIONS = {
    "csv": FileFormat.CSV,
    "tsv": FileFormat.CSV,  # the delimiter is detected anyway
    "json": FileFormat.JSON,
    "jsonl": FileFormat.JSONL,
    "ndjson": FileFormat.JSONL,
}
SUPPORTED_EXTENSIONS = tuple(_EXTENSIONS)  # each optionally followed by .gz


@dataclass(frozen=True)
class FileSpec:
    """How a file is stored: its format, whether it is gzip-compressed, and its name's parts."""

    format: FileFormat
    gzip: bool
    stem: str  # file name without the format (and .gz) extension
    extension: str  # as written in the name, e.g. "csv" or "CSV.gz"

    @property
    def content_type(self) -> str:
        if self.gzip:
            return "application/gzip"
        return {
            FileFormat.CSV: "text/csv; charset=utf-8",
            FileFormat.JSON: "application/json",
            FileFormat.JSONL: "application/x-ndjson",
        }[self.format]

    def results_name(self) -> str:
        return f"{self.stem}.{self.extension}"

    def errors_name(self) -> str:
        return f"{self.stem}.errors.{self.extension}"

    def manifest_name(self) -> str:
        return f"{self.stem}.manifest.json"


def detect_format(file_name: str) -> FileSpec:
    """Recognise `.csv`, `.tsv`, `.json`, `.jsonl`, `.ndjson`, each optionally followed by `.gz`.

    Raises FileFailure("unknown_format") for anything else: guessing from content would turn a
    mistaken upload into a confusing error report.
    """
    base = file_name.rsplit("/", 1)[-1]
    parts = base.split(".")
    gzip = len(parts) > 2 and parts[-1].lower() == "gz"
    format_index = -2 if gzip else -1
    if len(parts) < 2 or (len(parts) == 2 and not parts[0]):
        raise FileFailure("unknown_format", f"{base!r} has no file extension; use .csv, .json or .jsonl "
                                            "(optionally .gz)")
    file_format = _EXTENSIONS.get(parts[format_index].lower())
    if file_format is None:
        raise FileFailure("unknown_format", f"{base!r}: unsupported extension; use .csv, .tsv, .json, .jsonl "
                                            "or .ndjson, optionally followed by .gz")
    stem = ".".join(parts[:format_index])
    extension = ".".join(parts[format_index:])
    return FileSpec(format=file_format, gzip=gzip, stem=stem, extension=extension)


@dataclass(frozen=True)
class Limits:
    """Bounds that keep memory flat and stop hostile files early.

    max_bytes applies to the stored file and, for gzip, to the decompressed content as well (the bomb
    guard). A record is everything between two row boundaries (several lines with quoted newlines).
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_record_chars: int = 4 * 1024 * 1024
    max_field_chars: int = 100_000
