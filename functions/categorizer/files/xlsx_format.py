"""Excel workbooks (.xlsx): a streaming reader of one sheet and a streaming writer, both with openpyxl.

openpyxl's read-only mode parses the sheet XML as it iterates and its write-only mode spools rows to a
temporary file, so memory stays flat in the number of rows (bench/xlsx_memory.py measures a 200,000-row
sheet). A zip archive needs random access, so the input is first spooled to a temporary file. Formulas
are read as the values Excel cached for them, dates become ISO 8601 text. Workbooks with macros,
encrypted workbooks (an OLE container, not a zip) and legacy .xls files are refused as a whole.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from typing import IO, Any, BinaryIO

from categorizer.files.errors import FileFailure, RowError, excerpt
from categorizer.files.formats import Limits
from categorizer.files.rows import InputRow, describe_columns
from categorizer.files.streams import CHUNK_BYTES
from categorizer.files.text_columns import join_text_columns

ZIP_SIGNATURE = b"PK\x03\x04"
# Compound File Binary (OLE2): what Excel writes for a password-protected workbook and for .xls.
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
SPOOL_IN_MEMORY_BYTES = 8 * 1024 * 1024
CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SHEET_METADATA_KEY = "sheet"  # x-amz-meta-sheet names the sheet to read


def cell_text(value: Any) -> str:
    """A cell's value as the text the model and the CSV output see."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()  # a date cell: Excel stores dates as midnight
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _spool(binary: IO[bytes]) -> tempfile.SpooledTemporaryFile[bytes]:
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - the reader closes it
        SPOOL_IN_MEMORY_BYTES)
    shutil.copyfileobj(binary, spool, CHUNK_BYTES)
    spool.seek(0)
    return spool


def _check_container(spool: IO[bytes]) -> None:
    head = spool.read(len(OLE_SIGNATURE))
    spool.seek(0)
    if head.startswith(OLE_SIGNATURE):
        raise FileFailure("encrypted_workbook", "the workbook is password-protected (or is an old .xls file "
                                                "renamed .xlsx); remove the password or save it as an Excel "
                                                "Workbook (.xlsx)")
    if not head.startswith(ZIP_SIGNATURE):
        raise FileFailure("not_a_workbook", "the file is not an Excel workbook (.xlsx files are zip archives); "
                                            "save it from Excel as an Excel Workbook (.xlsx)")
    try:
        with zipfile.ZipFile(spool) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile as exc:
        raise FileFailure("corrupt_workbook", f"the workbook cannot be opened ({exc}); is the upload complete?") \
            from exc
    finally:
        spool.seek(0)
    if "xl/vbaProject.bin" in names:
        raise FileFailure("macro_workbook", "the workbook contains macros; save it as an Excel Workbook (.xlsx) "
                                            "without macros")
    if "xl/workbook.xml" not in names:
        raise FileFailure("not_a_workbook", "the zip archive is not an Excel workbook (no xl/workbook.xml)")


class XlsxReader:
    """Rows of one worksheet whose first non-empty row is the header. Empty rows are not records."""

    def __init__(self, binary: IO[bytes], *, text_columns: Sequence[str], limits: Limits,
                 sheet: str | None = None) -> None:
        from openpyxl import load_workbook  # imported on demand: only workbooks need it

        self._limits = limits
        self._spool = _spool(binary)
        _check_container(self._spool)
        try:
            self._workbook = load_workbook(self._spool, read_only=True, data_only=True, keep_links=False)
        except Exception as exc:  # openpyxl raises many kinds (KeyError, ValueError...) for a damaged file
            raise FileFailure("corrupt_workbook", f"the workbook cannot be read ({type(exc).__name__}: {exc})") \
                from exc
        names = self._workbook.sheetnames
        if sheet and sheet not in names:
            raise FileFailure("missing_sheet", f"no sheet named {sheet!r}; the workbook has: "
                                               f"{describe_columns(names)}")
        worksheet = self._workbook[sheet] if sheet else self._workbook.worksheets[0]
        self.sheet = worksheet.title
        self._rows = enumerate(worksheet.iter_rows(values_only=True), start=1)
        self.columns, self.header_line = self._read_header()
        self._text_indexes = self._find_text_columns(text_columns)

    def _read_header(self) -> tuple[list[str], int]:
        for line, cells in self._rows:
            if any(cell_text(cell).strip() for cell in cells):
                texts = [cell_text(cell).strip() for cell in cells]
                while texts and not texts[-1]:
                    texts.pop()
                # A merged header cell keeps its value in its first cell only; the others get a name.
                columns = [text or f"column_{index}" for index, text in enumerate(texts, start=1)]
                duplicates = sorted({name for name in columns if columns.count(name) > 1})
                if duplicates:
                    raise FileFailure("duplicate_columns",
                                      f"the header row (sheet {self.sheet!r}, row {line}) repeats column names: "
                                      f"{describe_columns(duplicates)}")
                return columns, line
        raise FileFailure("empty_file", f"the sheet {self.sheet!r} is empty: it needs a header row")

    def _find_text_columns(self, text_columns: Sequence[str]) -> list[int]:
        stripped = [name.strip() for name in self.columns]
        missing = [wanted for wanted in text_columns if wanted.strip() not in stripped]
        if missing:
            raise FileFailure("missing_text_column",
                              f"text column(s) {describe_columns(missing)} not found in sheet {self.sheet!r} "
                              f"(header in row {self.header_line}); it has columns: {describe_columns(self.columns)}")
        return [stripped.index(wanted.strip()) for wanted in text_columns]

    def rows(self) -> Iterator[InputRow | RowError]:
        width = len(self.columns)
        row = 0
        try:
            for line, cells in self._rows:
                fields = [cell_text(cell) for cell in cells]
                if not any(field.strip() for field in fields):
                    continue  # an empty row is not a record
                row += 1
                raw = ",".join(fields)
                extra = [index for index, field in enumerate(fields[width:], start=width + 1) if field.strip()]
                if extra:
                    yield RowError(row, line, "value_outside_header",
                                   f"the row has a value in column {extra[0]}, which has no header",
                                   excerpt(raw))
                    continue
                if max(map(len, fields)) > self._limits.max_field_chars:
                    yield RowError(row, line, "field_too_long",
                                   f"a cell is over {self._limits.max_field_chars:,} characters", excerpt(raw))
                    continue
                fields = (fields + [""] * width)[:width]
                text = join_text_columns([fields[index] for index in self._text_indexes])
                values = (list(cells) + [None] * width)[:width]
                yield InputRow(row, line, fields, text, raw, cells=tuple(values))
        finally:
            self._workbook.close()
            self._spool.close()


class XlsxWriter:
    """Rows into a one-sheet workbook, spooled to a temporary file and copied into `sink` on close()."""

    def __init__(self, sink: BinaryIO, *, columns: Sequence[str], sheet: str = "results") -> None:
        from openpyxl import Workbook
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, WriteOnlyCell

        self._sink = sink
        self._workbook = Workbook(write_only=True)
        self._sheet = self._workbook.create_sheet(sheet[:31])
        self._cell_type = WriteOnlyCell
        self._illegal = ILLEGAL_CHARACTERS_RE
        self.write(list(columns))

    def _cell(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        cell = self._cell_type(self._sheet, value=self._illegal.sub("\ufffd", value))
        cell.data_type = "s"  # text that starts with "=" stays text, never becomes a formula
        return cell

    def write(self, values: Sequence[Any]) -> None:
        self._sheet.append([self._cell(value) for value in values])

    def close(self) -> None:
        with tempfile.TemporaryFile() as spool:
            self._workbook.save(spool)
            spool.seek(0)
            shutil.copyfileobj(spool, self._sink, CHUNK_BYTES)
        self._sink.close()
