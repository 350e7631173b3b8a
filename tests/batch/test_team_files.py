"""The S3 batch function on the files teams drop: Excel's Windows-1252 CSV and .xlsx workbooks (moto S3/SQS).

The console upload goes through the same S3 object and function, so this also covers it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from openpyxl import load_workbook

from tests.files.workbooks import add_member, write_workbook

TEXTS = ["Le café a débité 12,50 € deux fois", "Señor Núñez perdió su tarjeta", "my card has not arrived"]


def _rows(data: bytes, delimiter: str = ",") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=delimiter))


def test_windows_1252_csv_is_classified_and_the_manifest_says_how_it_was_read(aws, lambda_context):
    body = ("id;texte\r\n" + "".join(f"{i};{text}\r\n" for i, text in enumerate(TEXTS))).encode("cp1252")
    aws.upload_and_deliver("ingest/excel.csv", body, lambda_context, metadata={"text-columns": "texte"})

    manifest = aws.manifest("results/excel.manifest.json")
    assert (manifest["status"], manifest["rows_in"], manifest["rows_classified"]) == ("succeeded", 3, 3)
    assert manifest["encoding"] == "cp1252" and manifest["encoding_decided"] is True
    assert 0.8 <= manifest["encoding_confidence"] <= 1.0
    assert [row["texte"] for row in _rows(aws.get("results/excel.csv"), ";")] == TEXTS


def test_xlsx_comes_back_as_csv_and_workbook_with_the_sheet_from_metadata(aws, lambda_context, tmp_path):
    path = write_workbook(tmp_path / "t.xlsx", [["x"]], sheet="Cover")
    workbook = load_workbook(path)
    sheet = workbook.create_sheet("Tickets")
    sheet.append(["title", "description", "opened"])
    sheet.append(["Card", "my card has not arrived", dt.datetime(2026, 5, 6)])
    sheet.append(["Refund", "where is my refund", dt.datetime(2026, 5, 7)])
    workbook.save(path)

    aws.upload_and_deliver("ingest/team/t.xlsx", path.read_bytes(), lambda_context,
                           metadata={"sheet": "Tickets", "text-columns": "title description"})

    manifest = aws.manifest("results/team/t.manifest.json")
    assert (manifest["status"], manifest["rows_in"], manifest["rows_classified"]) == ("succeeded", 2, 2)
    assert manifest["sheet"] == "Tickets" and manifest["text_columns"] == ["title", "description"]
    assert manifest["outputs"]["results"] == "results/team/t.csv"
    assert manifest["outputs"]["workbook"] == "results/team/t.xlsx"
    assert manifest["outputs"]["errors"] == "results/team/t.errors.csv"
    rows = _rows(aws.get("results/team/t.csv"))
    assert [(row["description"], row["opened"]) for row in rows] == [("my card has not arrived", "2026-05-06"),
                                                                     ("where is my refund", "2026-05-07")]
    result = load_workbook(io.BytesIO(aws.get("results/team/t.xlsx")), read_only=True)
    values = list(result.worksheets[0].iter_rows(values_only=True))
    assert values[1][2] == dt.datetime(2026, 5, 6)  # still a date in the workbook
    assert [row[3] for row in values[1:]] == [row["predicted_label"] for row in rows]
    assert aws.get("results/team/t.errors.csv").decode("utf-8-sig").startswith("row,line,reason")


@pytest.mark.parametrize(("name", "body", "reason"), [
    ("ingest/m.xlsm", b"PK\x03\x04", "macro_workbook"),
    ("ingest/old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy_excel"),
    ("ingest/locked.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1024), "encrypted_workbook"),
])
def test_refused_workbooks_get_a_clear_per_file_error(aws, lambda_context, name, body, reason):
    aws.upload_and_deliver(name, body, lambda_context)
    stem = name.removeprefix("ingest/").rsplit(".", 1)[0]
    manifests = [key for key in aws.result_keys() if key.endswith(".manifest.json")]
    assert len(manifests) == 1, aws.result_keys()
    manifest = aws.manifest(manifests[0])
    assert manifest["status"] == "failed" and manifest["failure"]["reason"] == reason
    assert manifests[0].startswith(f"results/{stem}")
    assert "xlsx" in manifest["failure"]["message"]


def test_macro_workbook_named_xlsx_is_refused(aws, lambda_context, tmp_path):
    path = add_member(write_workbook(tmp_path / "m.xlsx", [["text"], ["hi"]]), "xl/vbaProject.bin", b"\x00")
    aws.upload_and_deliver("ingest/m.xlsx", path.read_bytes(), lambda_context)
    manifest = aws.manifest("results/m.manifest.json")
    assert manifest["failure"]["reason"] == "macro_workbook"
    assert aws.get("results/m.xlsx") is None and aws.get("results/m.csv") is None
    assert _rows(aws.get("results/m.errors.csv"))[0]["reason"] == "macro_workbook"
