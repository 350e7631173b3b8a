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
    XLSX = "xlsx"  # an Excel workbook: one sheet read; results as CSV and as a workbook

    @property
    def tabular(self) -> bool:
        """Rows of cells under a header row (CSV and spreadsheets), as opposed to JSON objects."""
        return self in (FileFormat.CSV, FileFormat.XLSX)

    @property
    def splittable(self) -> bool:
        """Can the batch fan-out split it into chunks? A workbook is one zip archive: it is read whole."""
        return self is not FileFormat.XLSX


_EXTENSIONS = {
    "csv": FileFormat.CSV,
    "tsv": FileFormat.CSV,  # the delimiter is detected anyway
    "json": FileFormat.JSON,
    "jsonl": FileFormat.JSONL,
    "ndjson": FileFormat.JSONL,
    "xlsx": FileFormat.XLSX,
}
SUPPORTED_EXTENSIONS = tuple(_EXTENSIONS)
GZIP_EXTENSIONS = tuple(e for e, f in _EXTENSIONS.items() if f is not FileFormat.XLSX)  # may end in .gz
# Spreadsheet files we recognise but refuse, and what to do instead.
_REFUSED = {
    "xlsm": ("macro_workbook", "workbooks with macros (.xlsm) are not accepted; save it as an Excel Workbook "
                               "(.xlsx) or as CSV UTF-8"),
    "xls": ("legacy_excel", "the old Excel format (.xls) is not supported; save it as an Excel Workbook (.xlsx) "
                            "or as CSV UTF-8"),
    "xlsb": ("legacy_excel", "binary workbooks (.xlsb) are not supported; save it as an Excel Workbook (.xlsx) "
                             "or as CSV UTF-8"),
    "ods": ("unknown_format", "OpenDocument spreadsheets are not supported; save it as .xlsx or .csv"),
}
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


@dataclass(frozen=True)
class FileSpec:
    """How a file is stored: its format, whether it is gzip-compressed, and its name's parts."""

    format: FileFormat
    gzip: bool
    stem: str  # file name without the format (and .gz) extension
    extension: str  # as written in the name, e.g. "csv" or "CSV.gz"

    @property
    def content_type(self) -> str:
        """The content type of the results and errors files (a workbook's are CSV; see workbook_name)."""
        if self.gzip:
            return "application/gzip"
        return {
            FileFormat.CSV: CSV_CONTENT_TYPE,
            FileFormat.XLSX: CSV_CONTENT_TYPE,
            FileFormat.JSON: "application/json",
            FileFormat.JSONL: "application/x-ndjson",
        }[self.format]

    @property
    def output_extension(self) -> str:
        """The extension of the results and errors files: a workbook's rows come back as CSV too."""
        return "csv" if self.format is FileFormat.XLSX else self.extension

    def results_name(self) -> str:
        return f"{self.stem}.{self.output_extension}"

    def errors_name(self) -> str:
        return f"{self.stem}.errors.{self.output_extension}"

    def workbook_name(self) -> str | None:
        """A workbook's results as a workbook (beside the CSV), e.g. `report.xlsx`; None for other formats."""
        return f"{self.stem}.{self.extension}" if self.format is FileFormat.XLSX else None

    def manifest_name(self) -> str:
        return f"{self.stem}.manifest.json"


def detect_format(file_name: str) -> FileSpec:
    """Recognise `.csv`, `.tsv`, `.json`, `.jsonl`, `.ndjson`, each optionally followed by `.gz`, and `.xlsx`.

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
    extension_name = parts[format_index].lower()
    if extension_name in _REFUSED:
        reason, message = _REFUSED[extension_name]
        raise FileFailure(reason, f"{base!r}: {message}")
    file_format = _EXTENSIONS.get(extension_name)
    if file_format is None:
        raise FileFailure("unknown_format", f"{base!r}: unsupported extension; use .csv, .tsv, .json, .jsonl "
                                            "or .ndjson, optionally followed by .gz, or .xlsx")
    if file_format is FileFormat.XLSX and gzip:
        raise FileFailure("unknown_format", f"{base!r}: a workbook is already compressed; upload the .xlsx "
                                            "without .gz (or a .csv.gz)")
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
