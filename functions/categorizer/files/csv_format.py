"""CSV: delimiter detection, a bounded streaming reader, and a writer that neutralises formulas.

Reading is done with the `csv` module (strict quoting) fed by a line source that bounds each record,
so an unbalanced quote or a 10 MB line costs one rejected row, not the process's memory.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from categorizer.files.errors import UNDECODABLE, FileFailure, RowError, excerpt
from categorizer.files.formats import Limits
from categorizer.files.rows import InputRow, describe_columns
from categorizer.files.text_columns import join_text_columns

DELIMITERS = (",", ";", "\t", "|")  # preference order when counts tie
LINE_TERMINATOR = "\r\n"  # RFC 4180
# OWASP CSV injection: a cell starting with one of these is run as a formula by spreadsheets.
_FORMULA_STARTS = frozenset("=+-@\t\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?")


def neutralise_formula(cell: str) -> str:
    """Prefix a `'` to cells a spreadsheet would evaluate; plain numbers such as -12.5 stay as they are."""
    if cell and cell[0] in _FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def detect_delimiter(header_line: str) -> str:
    """The candidate that occurs most often outside quotes in the header line (`,` if none does)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    in_quotes = False
    for char in header_line:
        if char == '"':
            in_quotes = not in_quotes
        elif not in_quotes and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: (counts[d], -DELIMITERS.index(d)))
    return best if counts[best] else ","


class _RecordTooLong(Exception):
    pass


class _LineSource:
    """Physical lines for csv.reader, with per-record accounting: size, start line, raw text, bad bytes."""

    def __init__(self, text: io.TextIOBase, max_record_chars: int) -> None:
        self._text = text
        self._max = max_record_chars
        self._pushed_back: str | None = None
        self.line_no = 0
        self.start_record()

    def start_record(self) -> None:
        self.record_start = self.line_no + 1
        self.record_chars = 0
        self.record_lines: list[str] = []
        self.undecodable = False
        self.nul = False

    def raw_record(self) -> str:
        return "".join(self.record_lines)

    def first_content_line(self) -> str | None:
        """Skip leading blank lines; return the first other line without consuming it."""
        while True:
            line = self._read_line()
            if line is None:
                return None
            if line.strip("\r\n"):
                self._pushed_back = line
                return line
            self.line_no += 1

    def _read_line(self) -> str | None:
        line = self._text.readline(self._max + 1)
        if not line:
            return None
        if len(line) > self._max:
            while (rest := self._text.readline(self._max + 1)) and not rest.endswith(("\n", "\r")):
                pass  # drop the rest of the over-long line without keeping it
            self.line_no += 1
            self.record_lines.append(line[:1000])
            raise _RecordTooLong
        return line

    def __iter__(self) -> _LineSource:
        return self

    def __next__(self) -> str:
        if self._pushed_back is not None:
            line, self._pushed_back = self._pushed_back, None
        else:
            line = self._read_line()
            if line is None:
                raise StopIteration
        self.line_no += 1
        self.record_chars += len(line)
        self.record_lines.append(line)
        if self.record_chars > self._max:
            raise _RecordTooLong
        if "\x00" in line:
            self.nul = True
        if UNDECODABLE.search(line):
            self.undecodable = True
        return line


class CsvReader:
    """Rows of a CSV file with a header. Structural problems become RowErrors; the header must be sound."""

    def __init__(self, text: io.TextIOBase, *, text_columns: Sequence[str], limits: Limits,
                 encoding: str = "utf-8") -> None:
        """`encoding`: the name of the encoding `text` is decoded with, for the messages."""
        self._encoding = encoding
        csv.field_size_limit(max(csv.field_size_limit(), limits.max_record_chars + 1))
        self._limits = limits
        self._lines = _LineSource(text, limits.max_record_chars)
        try:
            first = self._lines.first_content_line()
        except _RecordTooLong:
            raise FileFailure("header_too_long", "the first line is over the record size limit") from None
        if first is None:
            raise FileFailure("empty_file", "the file is empty: a CSV file needs a header row")
        self.delimiter = detect_delimiter(first)
        self._reader = csv.reader(self._lines, delimiter=self.delimiter, quotechar='"', strict=True)
        self.columns = self._read_header()
        self._text_indexes = self._find_text_columns(text_columns)

    def _read_header(self) -> list[str]:
        self._lines.start_record()
        try:
            header = next(self._reader)
        except (csv.Error, _RecordTooLong) as exc:
            raise FileFailure("malformed_header", f"the header row cannot be parsed ({exc})") from None
        if self._lines.undecodable or self._lines.nul:
            raise FileFailure("binary_content", f"the header row is not {self._encoding} text and no other "
                                                "encoding fits (binary data?); save the file as CSV UTF-8")
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise FileFailure("duplicate_columns", f"the header repeats column names: {describe_columns(duplicates)}")
        return header

    def _find_text_columns(self, text_columns: Sequence[str]) -> list[int]:
        stripped = [name.strip() for name in self.columns]
        indexes, missing = [], []
        for wanted in text_columns:
            if wanted in self.columns:
                indexes.append(self.columns.index(wanted))
            elif stripped.count(wanted.strip()) == 1:  # tolerate "id, text" style headers
                indexes.append(stripped.index(wanted.strip()))
            else:
                missing.append(wanted)
        if missing:
            raise FileFailure("missing_text_column",
                              f"text column(s) {describe_columns(missing)} not found; the file has columns: "
                              f"{describe_columns(self.columns)}")
        return indexes

    def rows(self) -> Iterator[InputRow | RowError]:
        lines, limits = self._lines, self._limits
        width = len(self.columns)
        row = 0
        while True:
            lines.start_record()
            try:
                fields = next(self._reader)
            except StopIteration:
                return
            except _RecordTooLong:
                row += 1
                yield RowError(row, lines.record_start, "record_too_long",
                               f"the record is over {limits.max_record_chars:,} characters "
                               "(an unbalanced quote, or a huge field)", excerpt(lines.raw_record()))
                continue
            except csv.Error as exc:
                row += 1
                yield RowError(row, lines.record_start, "malformed_csv", str(exc), excerpt(lines.raw_record()))
                continue
            if not fields:
                continue  # a blank line is not a record
            row += 1
            problem = self._problem(fields, width)
            if problem:
                reason, message = problem
                yield RowError(row, lines.record_start, reason, message, excerpt(lines.raw_record()))
                continue
            if len(fields) < width:
                fields.extend([""] * (width - len(fields)))
            text = join_text_columns([fields[index] for index in self._text_indexes])
            yield InputRow(row, lines.record_start, fields, text, lines.raw_record())

    def _problem(self, fields: list[str], width: int) -> tuple[str, str] | None:
        if self._lines.undecodable:
            return "undecodable_bytes", (f"the row has bytes that are not valid {self._encoding} (the encoding "
                                         "decided for the file); save the file as CSV UTF-8")
        if self._lines.nul:
            return "nul_byte", "the row contains a NUL byte"
        if len(fields) > width:
            return "too_many_fields", (f"the row has {len(fields)} fields but the header has {width} "
                                       "(an unquoted delimiter in a value?)")
        if max(map(len, fields)) > self._limits.max_field_chars:
            return "field_too_long", f"a field is over {self._limits.max_field_chars:,} characters"
        return None


class CsvWriter:
    """Writes rows to a binary stream as UTF-8 CSV (optionally with a BOM), formulas neutralised."""

    def __init__(self, sink: BinaryIO, *, columns: Sequence[str] | None, delimiter: str = ",", bom: bool = False,
                 neutralise_formulas: bool = True) -> None:
        """`columns=None` writes rows only (a part of a file whose header is written by the join)."""
        self._sink = sink
        self._text = io.TextIOWrapper(sink, encoding="utf-8", newline="")  # type: ignore[arg-type]
        self._writer = csv.writer(self._text, delimiter=delimiter, quotechar='"', lineterminator=LINE_TERMINATOR)
        self._cell = neutralise_formula if neutralise_formulas else str
        if columns is not None:
            if bom:
                self._text.write("\ufeff")
            self.write(columns)

    def write(self, values: Sequence[str]) -> None:
        cell = self._cell
        self._writer.writerow([cell(value) for value in values])

    def close(self) -> None:
        self._text.flush()
        self._text.detach()
        self._sink.close()
