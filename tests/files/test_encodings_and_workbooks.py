"""Files as teams have them: Excel's Windows-1252 CSV, UTF-16 text, binary junk, and .xlsx workbooks.

Each runs through the same pipeline the S3 function and `classify-file` use, with a real (tiny) model,
and each checks that nothing is lost: rows_in = rows_classified + rows_rejected.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os

import pytest
from openpyxl import load_workbook

from categorizer.files.encodings import SAMPLE_BYTES, detect_encoding
from categorizer.files.pipeline import classify_local_file
from tests.files.workbooks import add_member, write_workbook

# Accents, the euro sign and the typographic quotes and dash Excel puts in (0x80-0x9F in Windows-1252).
WINDOWS_TEXTS = [
    "Le café a débité 12,50 € deux fois",
    "Müller: Überweisung nicht angekommen \u2013 bitte prüfen",
    "“Carte bloquée” après trois essais… que faire ?",
    "Señor Núñez perdió su tarjeta en el aeropuerto",
    "Frais de 3 € facturés à l\u2019étranger",
]


def _nothing_lost(summary) -> None:
    assert summary.rows_in == summary.rows_classified + summary.rows_rejected


def _csv_rows(path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))


def test_excel_windows_1252_csv_is_classified_whole_and_written_back_as_utf8(tmp_path, classifier):
    source = tmp_path / "export.csv"
    lines = ["id;name;text"] + [f"{i};Zoë Ångström;{text}" for i, text in enumerate(WINDOWS_TEXTS, start=1)]
    source.write_bytes("\r\n".join(lines).encode("cp1252") + b"\r\n")

    result = classify_local_file(source, tmp_path / "out.csv", classifier=classifier)

    summary = result.summary
    _nothing_lost(summary)
    assert (summary.rows_in, summary.rows_classified, summary.rows_rejected) == (5, 5, 0)
    assert summary.encoding == {"encoding": "cp1252", "encoding_confidence": pytest.approx(1.0, abs=0.2),
                                "encoding_decided": True}
    rows = list(csv.reader(io.StringIO(result.results_path.read_bytes().decode("utf-8"), newline=""),
                           delimiter=";"))
    assert [row[2] for row in rows[1:]] == WINDOWS_TEXTS
    # Byte for byte: each text is exactly its UTF-8 encoding in the output.
    output = result.results_path.read_bytes()
    assert all(text.encode("utf-8") in output for text in WINDOWS_TEXTS)
    output.decode("utf-8")  # strict: no Windows-1252 byte left over


def test_utf16_with_bom_is_read(tmp_path, classifier):
    source = tmp_path / "notepad.csv"
    source.write_bytes("text,id\r\nmy card has not arrived,1\r\nLe café coûte 3 €,2\r\n".encode("utf-16"))
    result = classify_local_file(source, tmp_path / "out.csv", classifier=classifier)
    _nothing_lost(result.summary)
    assert result.summary.rows_classified == 2
    assert result.summary.encoding["encoding"] == "utf-16"
    assert [row["text"] for row in _csv_rows(result.results_path)] == ["my card has not arrived",
                                                                         "Le café coûte 3 €"]


def test_undecidable_binary_rows_are_rejected_one_by_one(tmp_path, classifier):
    source = tmp_path / "odd.csv"
    junk = [os.urandom(64).replace(b"\n", b"").replace(b"\r", b"") + b"\x00" for _ in range(3)]
    source.write_bytes(b"text\nmy card is lost\n" + b"\n".join(junk) + b"\nwhere is my refund\n")

    result = classify_local_file(source, tmp_path / "out.csv", classifier=classifier)

    summary = result.summary
    _nothing_lost(summary)
    assert summary.encoding["encoding_decided"] is False and summary.encoding["encoding_confidence"] == 0.0
    assert summary.rows_classified == 2
    assert summary.rows_rejected >= 3  # a junk line can hold a quote and swallow its neighbour: still reported
    assert all(row["message"] for row in _csv_rows(result.errors_path))


@pytest.mark.parametrize(("data", "name", "decided"), [
    ("a café\n".encode("cp1252"), "cp1252", True),
    ("Zażółć gęślą jaźń, příliš žluťoučký kůň\n".encode("cp1250") * 3, "cp1250", True),
    ("Привет, как дела? Карта не пришла.\n".encode("cp1251") * 3, "cp1251", True),
    ("héllo".encode("utf-8-sig"), "utf-8", True),
    ("héllo".encode("utf-16-be"), "utf-8", False),  # UTF-16 needs its BOM
    (b"\x00\x01\x02\xff\xfe\xfd" * 10, "utf-8", False),
])
def test_detect_encoding(data, name, decided):
    encoding = detect_encoding(data)
    assert (encoding.name, encoding.decided) == (name, decided)


def test_a_character_cut_by_the_sample_boundary_is_still_utf8():
    data = b"a" * (SAMPLE_BYTES - 1) + "é".encode()
    assert detect_encoding(data[:SAMPLE_BYTES]).name == "utf-8"


# --- Excel workbooks ---------------------------------------------------------------------------------

def _team_workbook(path):
    """Formulas (with cached values), dates, empty rows, a merged header cell, a second sheet."""
    rows = [
        [None, None, None, None, None],  # an empty first row: the header is the first non-empty row
        ["Ticket", "Message", None, "Opened", "Total"],  # "Message" is merged over B1:C1
        [1, "my card has not arrived", "web", dt.datetime(2026, 1, 2), "=A3*10"],
        [None, None, None, None, None],  # empty row in the middle: not a record
        [2, '=CONCATENATE("I lost ","my card")', "phone", dt.datetime(2026, 2, 3, 14, 30), 19.5],
        [3, "=1+", "mail", dt.date(2026, 3, 4), None],
        [4, None, "mail", None, None],  # no text: rejected, not lost
    ]
    return write_workbook(path, rows, merged=["B2:C2"], other_sheets=["Notes"],
                          cached={"E3": 10, "B5": "I lost my card"})


def test_xlsx_formulas_dates_empty_rows_and_merged_header(tmp_path, classifier):
    source = _team_workbook(tmp_path / "tickets.xlsx")
    # The "=1+" cell is a broken formula with no cached value: it reads as empty.
    result = classify_local_file(source, tmp_path / "out.xlsx", text_columns="Message", classifier=classifier)

    summary = result.summary
    _nothing_lost(summary)
    assert (summary.rows_in, summary.rows_classified, summary.rows_rejected) == (4, 2, 2)
    assert summary.sheet == "Sheet1" and summary.format == "xlsx"
    assert result.results_path == tmp_path / "out.csv" and result.workbook_path == tmp_path / "out.xlsx"
    rows = _csv_rows(result.results_path)
    assert [(row["Ticket"], row["Message"], row["column_3"], row["Opened"], row["Total"]) for row in rows] == [
        ("1", "my card has not arrived", "web", "2026-01-02", "10"),
        ("2", "I lost my card", "phone", "2026-02-03T14:30:00", "19.5"),
    ]
    assert all(row["predicted_label"] for row in rows)
    errors = _csv_rows(result.errors_path)
    assert [(e["row"], e["line"], e["reason"]) for e in errors] == [("3", "6", "empty_text"), ("4", "7", "empty_text")]

    workbook = load_workbook(result.workbook_path, read_only=True)
    sheet_rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    assert sheet_rows[0][:5] == ("Ticket", "Message", "column_3", "Opened", "Total")
    assert sheet_rows[1][:5] == (1, "my card has not arrived", "web", dt.datetime(2026, 1, 2), 10)
    assert sheet_rows[2][1] == "I lost my card" and isinstance(sheet_rows[2][6], float)  # confidence
    assert [row[5] for row in sheet_rows[1:]] == [row["predicted_label"] for row in rows]
    workbook.close()


def test_xlsx_sheet_is_chosen_by_name(tmp_path, classifier):
    source = write_workbook(tmp_path / "book.xlsx", [["x"], ["y"]], sheet="Cover")
    from openpyxl import load_workbook as load

    workbook = load(source)
    data = workbook.create_sheet("Data")
    data.append(["text"])
    data.append(["where is my refund"])
    workbook.save(source)
    result = classify_local_file(source, tmp_path / "out.csv", classifier=classifier, sheet="Data")
    assert (result.summary.sheet, result.summary.rows_classified) == ("Data", 1)
    missing = classify_local_file(source, tmp_path / "out2.csv", classifier=classifier, sheet="Nope")
    assert missing.summary.failure_reason == "missing_sheet" and "'Data'" in missing.summary.failure_message


def test_xlsx_text_that_looks_like_a_formula_stays_text_in_the_output(tmp_path, classifier):
    result = classify_local_file(write_workbook(tmp_path / "g.xlsx", [["text", "note"], ["my card", "=1+1"]],
                                                cached={"B2": "=SUM(A1:A9)"}),
                                 tmp_path / "out.csv", classifier=classifier)
    assert _csv_rows(result.results_path)[0]["note"] == "'=SUM(A1:A9)"  # the CSV neutralises it too
    workbook = load_workbook(result.workbook_path)  # not read-only: shows formulas as written
    assert workbook.worksheets[0]["B2"].value == "=SUM(A1:A9)"
    assert workbook.worksheets[0]["B2"].data_type == "s"  # text, not a formula
    workbook.close()


def test_macro_workbook_with_xlsx_name_is_refused(tmp_path, classifier):
    source = add_member(write_workbook(tmp_path / "m.xlsx", [["text"], ["hi"]]), "xl/vbaProject.bin", b"\x00")
    result = classify_local_file(source, tmp_path / "out.csv", classifier=classifier)
    assert result.summary.failure_reason == "macro_workbook" and result.results_path is None
    assert "macros" in _csv_rows(result.errors_path)[0]["message"]


def test_large_xlsx_streams_every_row(tmp_path, classifier):
    """Enough rows to cross several batches and the in-memory spool; bench/xlsx_memory.py does 200,000."""
    rows = [["id", "text"]] + [[i, f"my card number {i} has not arrived"] for i in range(3000)]
    source = write_workbook(tmp_path / "big.xlsx", rows, write_only=True)
    seen = []
    result = classify_local_file(source, tmp_path / "out.csv", classifier=classifier,
                                 after_batch=lambda summary: seen.append(summary.rows_in))
    _nothing_lost(result.summary)
    assert result.summary.rows_classified == 3000
    assert seen[:2] == [256, 512]
