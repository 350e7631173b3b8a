"""`categorizer classify-file`: the batch function's reader, engine and writer on local files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT

CLI = [sys.executable, "-m", "categorizer_cli.main"]


def test_classify_file_writes_results_and_errors(default_bundle: Path, tmp_path: Path):
    out = tmp_path / "out.csv"
    result = subprocess.run([*CLI, "classify-file", str(ROOT / "examples" / "support-messages.csv"),
                             "--out", str(out), "--model", str(default_bundle)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["rows_in"], summary["rows_classified"], summary["rows_rejected"]) == (10, 9, 1)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5", "7", "8", "9", "10"]
    assert rows[0]["predicted_label"] == "card_arrival"
    assert rows[-1]["text"].startswith("'=")  # a formula cell is neutralised for spreadsheets
    errors = list(csv.DictReader((tmp_path / "out.errors.csv").open(encoding="utf-8")))
    assert [(e["row"], e["reason"]) for e in errors] == [("6", "empty_text")]


def test_classify_file_refuses_an_unknown_format(default_bundle: Path, tmp_path: Path):
    source = tmp_path / "notes.txt"
    source.write_text("hello")
    result = subprocess.run([*CLI, "classify-file", str(source), "--out", str(tmp_path / "o.txt"),
                             "--model", str(default_bundle)], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "notes.txt" in result.stderr
