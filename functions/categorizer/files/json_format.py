"""JSON (one array of objects) and JSON Lines: streaming readers and writers.

The array reader decodes one element at a time from a bounded text window, so a 500 MB array never
sits in memory. An element that cannot be parsed ends the array (there is no way to find the next
element reliably), so it is a whole-file failure; in JSON Lines a bad line is one rejected row.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from categorizer.files.errors import UNDECODABLE, FileFailure, RowError, excerpt
from categorizer.files.formats import Limits
from categorizer.files.rows import InputRow, describe_columns
from categorizer.files.text_columns import join_text_columns

_READ_CHARS = 64 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")  # only reachable through \\uXXXX escapes in JSON
_WHITESPACE = " \t\r\n"
_NOT_AN_OBJECT_REASONS = frozenset({"malformed_json", "not_an_object", "undecodable_bytes", "record_too_long",
                                    "too_deeply_nested"})


class _StrictDecoder(json.JSONDecoder):
    """Flags NaN, Infinity and numbers that overflow to infinity: they cannot be written back as JSON."""

    def __init__(self) -> None:
        super().__init__(parse_constant=self._constant, parse_float=self._float)
        self.non_finite = False

    def _constant(self, name: str) -> float:
        self.non_finite = True
        return float(name.replace("Infinity", "inf"))

    def _float(self, literal: str) -> float:
        value = float(literal)
        if math.isinf(value):
            self.non_finite = True
        return value


class _RowBuilder:
    """Turns decoded JSON values into rows: the object check, the first-object column check, the text."""

    def __init__(self, text_columns: Sequence[str], limits: Limits) -> None:
        self._columns = tuple(text_columns)
        self._limits = limits
        self._seen_object = False

    def build(self, row: int, line: int | None, value: Any, raw: str) -> InputRow | RowError:
        if not isinstance(value, dict):
            return RowError(row, line, "not_an_object", f"expected a JSON object, got {_kind(value)}",
                            excerpt(raw))
        if not self._seen_object:
            self._seen_object = True
            if not any(column in value for column in self._columns):
                raise FileFailure("missing_text_column",
                                  f"text column(s) {describe_columns(self._columns)} not found in the first "
                                  f"object; it has keys: {describe_columns(list(value))}")
        parts = []
        for column in self._columns:
            part = value.get(column)
            if part is not None and not isinstance(part, str):
                return RowError(row, line, "text_not_string",
                                f"{column!r} holds {_kind(part)}, not a string", excerpt(raw))
            if part is not None and len(part) > self._limits.max_field_chars:
                return RowError(row, line, "field_too_long",
                                f"{column!r} is over {self._limits.max_field_chars:,} characters", excerpt(raw))
            parts.append(part)
        text = join_text_columns(parts)
        if _SURROGATE.search(text):
            return RowError(row, line, "invalid_unicode", "the text holds a lone UTF-16 surrogate escape "
                                                          "(\\ud800-\\udfff)", excerpt(raw))
        return InputRow(row, line, value, text, raw)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


class JsonLinesReader:
    """One JSON object per line; blank lines are skipped. The first line must be an object."""

    def __init__(self, text: io.TextIOBase, *, text_columns: Sequence[str], limits: Limits) -> None:
        self._text = text
        self._limits = limits
        self._builder = _RowBuilder(text_columns, limits)
        self._decoder = _StrictDecoder()

    def rows(self) -> Iterator[InputRow | RowError]:
        limit = self._limits.max_record_chars
        line_no = row = 0
        while line := self._text.readline(limit + 1):
            line_no += 1
            if len(line) > limit and not line.endswith("\n"):
                while (rest := self._text.readline(limit + 1)) and not rest.endswith("\n"):
                    pass
                row += 1
                yield self._first_line_check(row, RowError(row, line_no, "record_too_long",
                                                           f"the line is over {limit:,} characters",
                                                           excerpt(line)))
                continue
            stripped = line.strip(_WHITESPACE)
            if not stripped:
                continue
            row += 1
            yield self._first_line_check(row, self._parse(row, line_no, stripped))
        if row == 0:
            raise FileFailure("empty_file", "the file holds no JSON Lines records")

    def _parse(self, row: int, line_no: int, line: str) -> InputRow | RowError:
        if UNDECODABLE.search(line):
            return RowError(row, line_no, "undecodable_bytes", "the line has bytes that are not valid UTF-8",
                            excerpt(line))
        self._decoder.non_finite = False
        try:
            value = self._decoder.decode(line)
        except json.JSONDecodeError as exc:
            return RowError(row, line_no, "malformed_json", f"{exc.msg} (column {exc.colno})", excerpt(line))
        except RecursionError:
            return RowError(row, line_no, "too_deeply_nested", "the JSON value is nested too deeply",
                            excerpt(line))
        if self._decoder.non_finite:
            return RowError(row, line_no, "non_finite_number", "NaN and Infinity are not valid JSON",
                            excerpt(line))
        return self._builder.build(row, line_no, value, line)

    @staticmethod
    def _first_line_check(row: int, result: InputRow | RowError) -> InputRow | RowError:
        """A first line that is not an object means this is not JSON Lines: fail rather than reject every row."""
        if row == 1 and isinstance(result, RowError) and result.reason in _NOT_AN_OBJECT_REASONS:
            raise FileFailure("not_json_lines", f"the first line is not a JSON object ({result.reason}: "
                                                f"{result.message}); is this really a JSON Lines file?")
        return result


class JsonArrayReader:
    """Elements of a top-level JSON array, decoded one at a time from a growing-then-trimmed window."""

    def __init__(self, text: io.TextIOBase, *, text_columns: Sequence[str], limits: Limits) -> None:
        self._text = text
        self._limits = limits
        self._builder = _RowBuilder(text_columns, limits)
        self._decoder = _StrictDecoder()
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._line = 1

    def _fill(self, at_least: int = _READ_CHARS) -> bool:
        """Append more text (dropping what was consumed). False at end of file."""
        if self._eof:
            return False
        chunk = self._text.read(max(at_least, _READ_CHARS))
        if not chunk:
            self._eof = True
            return False
        self._line += self._buf.count("\n", 0, self._pos)
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        return True

    def _skip_whitespace(self) -> str | None:
        """The next significant character (not consumed), or None at end of file."""
        while True:
            buf, pos = self._buf, self._pos
            while pos < len(buf) and buf[pos] in _WHITESPACE:
                pos += 1
            self._pos = pos
            if pos < len(buf):
                return buf[pos]
            if not self._fill():
                return None

    def _line_at(self, pos: int) -> int:
        return self._line + self._buf.count("\n", 0, pos)

    def rows(self) -> Iterator[InputRow | RowError]:
        first = self._skip_whitespace()
        if first is None:
            raise FileFailure("empty_file", "the file is empty: expected a JSON array of objects")
        if first != "[":
            hint = " (one object per line? name the file .jsonl)" if first == "{" else ""
            raise FileFailure("not_json_array", f"a .json file must hold one JSON array of objects; this one "
                                                f"starts with {excerpt(first)!r}{hint}")
        self._pos += 1
        row = 0
        while True:
            char = self._skip_whitespace()
            if char is None:
                raise FileFailure("malformed_json", f"the array is not closed after element {row} "
                                                    "(truncated file?)")
            if char == "]" and row == 0:
                self._pos += 1
                break
            if row > 0:
                if char == "]":
                    self._pos += 1
                    break
                if char != ",":
                    raise FileFailure("malformed_json", f"expected ',' or ']' after element {row} "
                                                        f"(line {self._line_at(self._pos)})")
                self._pos += 1
                if self._skip_whitespace() in ("]", None):
                    raise FileFailure("malformed_json", f"a comma after element {row} is followed by no element")
            row += 1
            yield self._next_element(row)
        if self._skip_whitespace() is not None:
            raise FileFailure("malformed_json", "there is content after the closing ']' of the array")

    def _next_element(self, row: int) -> InputRow | RowError:
        limit = self._limits.max_record_chars
        while True:
            start = self._pos
            self._decoder.non_finite = False
            try:
                value, end = self._decoder.raw_decode(self._buf, start)
            except json.JSONDecodeError as exc:
                if len(self._buf) - start > limit:
                    raise FileFailure("record_too_long", f"element {row} is over {limit:,} characters or is "
                                                         "malformed; the rest of the array cannot be read") from None
                if self._fill(len(self._buf) - start):
                    continue  # probably cut off at the window's end: read more and try again
                raise FileFailure("malformed_json", f"element {row} (line {self._line_at(start)}): "
                                                    f"{exc.msg}") from None
            except RecursionError:
                raise FileFailure("too_deeply_nested", f"element {row} is nested too deeply") from None
            if end == len(self._buf) and self._fill(len(self._buf) - start):
                continue  # a number at the window's end may go on: decode again with more text
            break
        line = self._line_at(start)
        raw = self._buf[start:end]
        self._pos = end
        if end - start > limit:
            return RowError(row, line, "record_too_long", f"the element is over {limit:,} characters",
                            excerpt(raw))
        if UNDECODABLE.search(raw):
            return RowError(row, line, "undecodable_bytes", "the element has bytes that are not valid UTF-8",
                            excerpt(raw))
        if self._decoder.non_finite:
            return RowError(row, line, "non_finite_number", "NaN and Infinity are not valid JSON", excerpt(raw))
        return self._builder.build(row, line, value, raw)


def dumps_json(value: Any) -> bytes:
    """Compact UTF-8 JSON. A lone surrogate (from an escape such as "\\udc80" in the input) cannot be
    UTF-8 encoded, so such a value is written with ASCII escapes instead: still the same JSON value."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, allow_nan=False).encode("ascii")


ARRAY_OPEN, ARRAY_SEPARATOR = b"[\n", b",\n"


def array_close(empty: bool) -> bytes:
    return b"]\n" if empty else b"\n]\n"


class JsonArrayWriter:
    """`[`, one object per line separated by commas, `]`: valid JSON that diffs and streams well.

    With `framing=False` it writes only the comma-separated elements (a part that a join frames).
    """

    def __init__(self, sink: BinaryIO, *, framing: bool = True) -> None:
        self._sink = sink
        self._framing = framing
        self._empty = True
        if framing:
            sink.write(ARRAY_OPEN)

    def write(self, value: Any) -> None:
        self._sink.write(dumps_json(value) if self._empty else ARRAY_SEPARATOR + dumps_json(value))
        self._empty = False

    def close(self) -> None:
        if self._framing:
            self._sink.write(array_close(self._empty))
        self._sink.close()


class JsonLinesWriter:
    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink

    def write(self, value: Any) -> None:
        self._sink.write(dumps_json(value) + b"\n")

    def close(self) -> None:
        self._sink.close()
