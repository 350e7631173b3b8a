"""Format detection from the file name, delimiter detection, and formula neutralisation."""

from __future__ import annotations

import pytest

from categorizer.files.csv_format import detect_delimiter, neutralise_formula
from categorizer.files.errors import FileFailure
from categorizer.files.formats import FileFormat, detect_format


@pytest.mark.parametrize(("name", "file_format", "gzip", "results", "errors", "manifest"), [
    ("a.csv", FileFormat.CSV, False, "a.csv", "a.errors.csv", "a.manifest.json"),
    ("dir/Q3 report.final.CSV", FileFormat.CSV, False, "Q3 report.final.CSV", "Q3 report.final.errors.CSV",
     "Q3 report.final.manifest.json"),
    ("a.tsv", FileFormat.CSV, False, "a.tsv", "a.errors.tsv", "a.manifest.json"),
    ("a.json", FileFormat.JSON, False, "a.json", "a.errors.json", "a.manifest.json"),
    ("a.jsonl", FileFormat.JSONL, False, "a.jsonl", "a.errors.jsonl", "a.manifest.json"),
    ("a.ndjson.gz", FileFormat.JSONL, True, "a.ndjson.gz", "a.errors.ndjson.gz", "a.manifest.json"),
    ("été+1.csv.GZ", FileFormat.CSV, True, "été+1.csv.GZ", "été+1.errors.csv.GZ", "été+1.manifest.json"),
])
def test_detect_format(name, file_format, gzip, results, errors, manifest):
    spec = detect_format(name)
    assert (spec.format, spec.gzip) == (file_format, gzip)
    assert (spec.results_name(), spec.errors_name(), spec.manifest_name()) == (results, errors, manifest)


@pytest.mark.parametrize("name", ["a.ods", "a.xlsx.gz", "a.gz", "README", "a.csv.zip", ".csv", "a.txt"])
def test_unknown_formats_fail_with_a_reason(name):
    with pytest.raises(FileFailure) as failure:
        detect_format(name)
    assert failure.value.reason == "unknown_format" and ".csv" in failure.value.message


@pytest.mark.parametrize(("header", "delimiter"), [
    ("id,text", ","), ("id;text", ";"), ("id\ttext", "\t"), ("id|text", "|"), ("text", ","),
    ('"a;b",text', ","), ('"a,b";"c,d";e', ";"), ("a,b;c;d", ";"), ("a;b,c", ","),
])
def test_detect_delimiter(header, delimiter):
    assert detect_delimiter(header) == delimiter


@pytest.mark.parametrize(("cell", "expected"), [
    ("=1+2", "'=1+2"), ("+SUM(A1)", "'+SUM(A1)"), ("-2+3", "'-2+3"), ("@cmd", "'@cmd"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ('=HYPERLINK("http://evil")', "'=HYPERLINK(\"http://evil\")"), ("-", "'-"),
    ("-12.5", "-12.5"), ("+3", "+3"), ("-1,5", "-1,5"), ("-.5", "-.5"), ("-1e10", "-1e10"), ("12", "12"),
    ("plain", "plain"), ("a=b", "a=b"), ("", ""), (" =1", " =1"),
])
def test_neutralise_formula(cell, expected):
    assert neutralise_formula(cell) == expected
