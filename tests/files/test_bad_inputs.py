"""The bad-input catalogue: every case has its expected outcome, and no row is ever lost.

For each case: rows_in = rows_classified + rows_rejected, the results file has exactly the classified
rows and the errors file exactly the rejected ones (or, for a failed file, the reason is the expected one).
"""

from __future__ import annotations

import gzip
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from categorizer.files.errors import FileFailure
from categorizer.files.formats import Limits, detect_format


@dataclass
class Case:
    id: str
    name: str
    data: bytes | Callable[[], bytes]
    status: str = "succeeded"
    reason: str | None = None  # failure reason, for failed files
    classified: int | None = None
    rejected: dict[str, int] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    check: Callable[[Any], None] | None = None


def _jsonl(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _bomb() -> bytes:
    compressor = gzip.compress(b"text\n" + b"0" * (48 * 1024 * 1024), compresslevel=9)
    return compressor


def _truncated_gzip() -> bytes:
    return gzip.compress(b"text\nmy card has not arrived\nwhat is the exchange rate\n")[:-10]


def _corrupt_gzip() -> bytes:
    data = bytearray(gzip.compress(("text\n" + "my card has not arrived\n" * 200).encode()))
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


def _check_formulas(run) -> None:
    rows = run.result_rows()
    assert [row["text"] for row in rows] == ["'=HYPERLINK(\"http://x\")", "'@SUM(A1)", "my card"]
    assert [row["note"] for row in rows] == ["-12.5", "+3", "'-2+3"]


def _check_nfc_nfd(run) -> None:
    rows = run.result_rows()
    assert rows[0]["text"] != rows[1]["text"]  # the input is kept as it was...
    assert unicodedata.normalize("NFC", rows[1]["text"]) == rows[0]["text"]
    assert rows[0]["confidence"] == rows[1]["confidence"]  # ...and classified the same way


def _check_unicode_kept(run) -> None:
    assert [row["text"] for row in run.result_rows()] == ["💳 my card has not arrived 😡", "لم تصل بطاقتي بعد"]


def _check_truncated(run) -> None:
    assert run.summary.truncated == 1


def _check_surrogate_kept(run) -> None:
    assert b"\\udc80" in run.results  # written as an escape: valid UTF-8, the same JSON value
    assert run.result_rows()[0]["note"] == "\udc80"


def _check_columns_listed(run) -> None:
    assert "'id'" in run.summary.failure_message and "'body'" in run.summary.failure_message


CASES = [
    Case("empty file", "a.csv", b"", "failed", "empty_file"),
    Case("blank lines only", "a.csv", b"\n\r\n\n", "failed", "empty_file"),
    Case("header only", "a.csv", b"id,text\r\n", classified=0),
    Case("no text column (columns listed)", "a.csv", b"id,body\n1,hello\n", "failed", "missing_text_column",
         check=_check_columns_listed),
    Case("UTF-8 BOM", "a.csv", b"\xef\xbb\xbftext\nmy card has not arrived\n", classified=1),
    # Not UTF-8: the encoding is detected (files/encodings.py), so every row is classified.
    Case("Latin-1 bytes in a row", "a.csv", "text\nmon café préféré\nmy card is lost\n".encode("latin-1"),
         classified=2),
    Case("UTF-16 with BOM", "a.csv", "text\nhello\n".encode("utf-16"), classified=1),
    # Decided on the first 64 KiB (UTF-8), confirmed over the rest: a later Latin-1 row is rejected alone.
    Case("Latin-1 row after 64 KiB of UTF-8", "a.csv",
         b"text\n" + "my card was declined at the café\n".encode() * 2200 + "mon café\n".encode("latin-1"),
         classified=2200, rejected={"undecodable_bytes": 1}),
    Case("UTF-16 without BOM", "a.csv", "text\nhello\n".encode("utf-16-le"), "failed", "binary_content"),
    Case("NUL byte in a row", "a.csv", b"text\nmy card\x00 is lost\nexchange rate today\n", classified=1,
         rejected={"nul_byte": 1}),
    Case("binary garbage named .csv", "a.csv", bytes(range(256)) * 16, "failed", "binary_content"),
    Case("; delimiter", "a.csv", b"id;text\n1;where is my card, please\n", classified=1),
    Case("tab delimiter", "a.tsv", b"id\ttext\n1\twhere is my card\n", classified=1),
    Case("| delimiter", "a.csv", b"id|text\n1|where is my card\n", classified=1),
    Case("quoted newlines", "a.csv", b'id,text\n1,"my card\nhas not arrived"\n2,"exchange\r\nrate"\n',
         classified=2),
    Case("CRLF line endings", "a.csv", b"id,text\r\n1,my card\r\n2,exchange rate\r\n", classified=2),
    Case("stray quote after a quoted field", "a.csv", b'id,text\n1,"my card" lost\n2,exchange rate\n',
         classified=1, rejected={"malformed_csv": 1}),
    Case("unterminated quote at the end", "a.csv", b'id,text\n1,my card\n2,"exchange rate\n3,hello\n',
         classified=1, rejected={"malformed_csv": 1}),
    Case("1 MB field", "a.csv", lambda: b"text\n" + b"a" * 1_048_576 + b"\nmy card is lost\n", classified=1,
         rejected={"field_too_long": 1}),
    Case("10 MB line", "a.csv", lambda: b"id,text\n1," + b"b" * 10_485_760 + b"\n2,my card is lost\n",
         classified=1, rejected={"record_too_long": 1}),
    Case("ragged rows", "a.csv", b"id,text,extra\n1,my card\n2,exchange rate,x,y\n", classified=1,
         rejected={"too_many_fields": 1}),
    Case("blank lines between rows", "a.csv", b"text\n\nmy card\n\n\nexchange rate\n", classified=2),
    Case("whitespace-only text", "a.csv", b"id,text\n1,   \n2,my card\n", classified=1, rejected={"empty_text": 1}),
    Case("' text' header with a space", "a.csv", b"id, text\n1,my card\n", classified=1),
    Case("duplicate column names", "a.csv", b"text,text\na,b\n", "failed", "duplicate_columns"),
    Case("formula-injection cells", "a.csv",
         b'id,text,note\n1,"=HYPERLINK(""http://x"")",-12.5\n2,@SUM(A1),+3\n3,my card,-2+3\n', classified=3,
         check=_check_formulas),
    Case("NFC vs NFD text", "a.csv", "text\ncafé card\n{}\n".format(unicodedata.normalize("NFD", "café card"))
         .encode(), classified=2, check=_check_nfc_nfd),
    Case("emoji and RTL text", "a.csv", "text\n💳 my card has not arrived 😡\nلم تصل بطاقتي بعد\n".encode(),
         classified=2, check=_check_unicode_kept),
    Case("text far over the token limit", "a.csv", lambda: b"text\n" + b"my card is lost " * 4000 + b"\n",
         classified=1, check=_check_truncated),
    Case("over the size limit", "a.csv", b"text\n" + b"my card\n" * 200, "failed", "file_too_large",
         options={"limits": Limits(max_bytes=1000)}),
    Case("JSON array", "a.json", b'[{"id": 1, "text": "my card"}, {"id": 2, "text": "exchange rate"}]', classified=2),
    Case("empty JSON array", "a.json", b"[ ]", classified=0),
    Case("JSON Lines", "a.jsonl", _jsonl('{"text": "my card"}', "", '{"text": "exchange rate"}'), classified=2),
    Case("single object in .json", "a.json", b'{"text": "my card"}', "failed", "not_json_array"),
    Case("JSON Lines content named .json", "a.json", _jsonl('{"text": "a"}', '{"text": "b"}'), "failed",
         "not_json_array"),
    Case("JSON array named .jsonl", "a.jsonl", b'[{"text": "my card"}]', "failed", "not_json_lines"),
    Case("NaN / Infinity / null text", "a.jsonl",
         _jsonl('{"text": "my card"}', '{"text": null}', '{"text": NaN}', '{"text": "x", "v": -Infinity}',
                '{"text": "NaN"}', '{"text": "y", "v": 1e999}'),
         classified=2, rejected={"empty_text": 1, "non_finite_number": 3}),
    Case("text that is not a string", "a.json", b'[{"text": "my card"}, {"text": 5}, {"text": ["a"]}]',
         classified=1, rejected={"text_not_string": 2}),
    Case("array element that is not an object", "a.json", b'[{"text": "my card"}, 5, "x", null]', classified=1,
         rejected={"not_an_object": 3}),
    Case("malformed JSON line", "a.jsonl", _jsonl('{"text": "my card"}', '{"text": "oops', '{"text": "rate"}'),
         classified=2, rejected={"malformed_json": 1}),
    Case("malformed element in an array", "a.json", b'[{"text": "my card"}, {"text": }]', "failed",
         "malformed_json"),
    Case("array never closed (truncated)", "a.json", b'[{"text": "my card"},', "failed", "malformed_json"),
    Case("content after the array", "a.json", b'[{"text": "my card"}] {"x": 1}', "failed", "malformed_json"),
    Case("deeply nested JSON line", "a.jsonl",
         lambda: _jsonl('{"text": "my card"}', '{"text": "a", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
         classified=1, rejected={"too_deeply_nested": 1}),
    Case("deeply nested JSON array element", "a.json",
         lambda: b'[{"text": "my card"}, {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]", "failed",
         "too_deeply_nested"),
    Case("Latin-1 JSON line", "a.jsonl", _jsonl('{"text": "my card"}') + '{"text": "café"}\n'.encode("latin-1"),
         classified=2),
    Case("lone surrogate escape in the text", "a.jsonl", _jsonl('{"text": "my card"}', '{"text": "\\ud800 card"}'),
         classified=1, rejected={"invalid_unicode": 1}),
    Case("lone surrogate escape in another field", "a.jsonl", _jsonl('{"text": "my card", "note": "\\udc80"}'),
         classified=1, check=_check_surrogate_kept),
    Case("gzip CSV", "a.csv.gz", gzip.compress(b"text\nmy card\n"), classified=1),
    Case("multi-member gzip", "a.csv.gz", gzip.compress(b"text\nmy card\n") + gzip.compress(b"exchange rate\n"),
         classified=2),
    Case("gzip bomb", "a.csv.gz", _bomb, "failed", "decompressed_too_large",
         options={"limits": Limits(max_bytes=8 * 1024 * 1024)}),
    Case("truncated gzip", "a.csv.gz", _truncated_gzip, "failed", "truncated_gzip"),
    Case("corrupt gzip", "a.csv.gz", _corrupt_gzip, "failed", "corrupt_gzip"),
    Case("not gzip at all, named .gz", "a.jsonl.gz", b'{"text": "my card"}\n', "failed", "corrupt_gzip"),
    Case("unknown extension", "a.ods", b"PK\x03\x04", "failed", "unknown_format"),
    Case("macro workbook", "a.xlsm", b"PK\x03\x04", "failed", "macro_workbook"),
    Case("legacy Excel", "a.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "failed", "legacy_excel"),
    Case("truncated workbook", "a.xlsx", b"PK\x03\x04", "failed", "corrupt_workbook"),
    Case("encrypted workbook", "a.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "failed",
         "encrypted_workbook"),
    Case("text named .xlsx", "a.xlsx", b"text\nhello\n", "failed", "not_a_workbook"),
    Case("no extension", "README", b"text\nhello\n", "failed", "unknown_format"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_catalogue(case: Case, run_file):
    data = case.data() if callable(case.data) else case.data
    if case.reason == "unknown_format" or case.name.endswith((".xlsm", ".xls")):  # refused by name
        with pytest.raises(FileFailure, match=case.reason):
            detect_format(case.name)
        return
    run = run_file(case.name, data, **case.options)
    summary = run.summary
    assert summary.rows_in == summary.rows_classified + summary.rows_rejected
    assert summary.status == case.status, summary.to_dict()
    if case.status == "failed":
        assert summary.failure_reason == case.reason, summary.failure_message
        assert summary.failure_message
    else:
        assert summary.rows_classified == case.classified
        assert dict(summary.rejected_by_reason) == case.rejected
        assert len(run.result_rows()) == summary.rows_classified
        errors = run.error_rows()
        assert len(errors) == summary.rows_rejected
        assert all(str(error["reason"]) in case.rejected and error["message"] for error in errors)
    if case.check:
        case.check(run)


def test_catalogue_has_at_least_thirty_cases():
    assert len(CASES) >= 30


def test_error_rows_point_at_the_row_and_line(run_file):
    data = b'id,text\n1,"my card\nhas not arrived"\n2,\n3,"stray" quote\n4,exchange rate\n'
    errors = run_file("a.csv", data).error_rows()
    assert [(e["row"], e["line"], e["reason"]) for e in errors] == [("2", "4", "empty_text"),
                                                                    ("3", "5", "malformed_csv")]
    assert errors[0]["excerpt"] == "2,"


def test_json_lines_record_too_long(run_file):
    data = _jsonl('{"text": "my card"}', '{"text": "' + "x" * 5000 + '"}', '{"text": "rate"}')
    run = run_file("a.jsonl", data, limits=Limits(max_record_chars=1000, max_field_chars=500))
    assert dict(run.summary.rejected_by_reason) == {"record_too_long": 1}
    assert run.summary.rows_classified == 2


def test_text_column_missing_in_first_json_object_lists_its_keys(run_file):
    run = run_file("a.json", json.dumps([{"title": "a", "body": "b"}]).encode())
    assert run.summary.failure_reason == "missing_text_column"
    assert "'title'" in run.summary.failure_message and "'body'" in run.summary.failure_message
