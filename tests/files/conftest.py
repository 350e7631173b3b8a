"""Fixtures for the file readers/writers and the classify pipeline: a real tiny classifier, a runner."""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass

import pytest

from categorizer.engine import Classifier
from categorizer.files.formats import Limits, detect_format
from categorizer.files.pipeline import JobSummary, classify_stream


@dataclass
class Run:
    summary: JobSummary
    results: bytes  # decompressed
    errors: bytes  # decompressed
    raw_results: bytes  # as written (gzip for .gz)

    def result_rows(self) -> list:
        return parse_output(self.results, self.summary.format, self.summary.delimiter)

    def error_rows(self) -> list:
        return parse_output(self.errors, self.summary.format, self.summary.delimiter)


def parse_output(data: bytes, file_format: str, delimiter: str | None = None) -> list:
    import csv

    text = data.decode("utf-8-sig")
    if file_format in ("csv", "xlsx"):  # a workbook's results and errors are CSV
        return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter or ","))
    if file_format == "json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def run_file(classifier: Classifier):
    """Classify bytes as if they were a file called `name`; returns the summary and both outputs."""

    def run(name: str, data: bytes, *, text_columns=("text",), limits: Limits | None = None, batch_size: int = 256,
            **kwargs) -> Run:
        spec = detect_format(name)
        results, errors = io.BytesIO(), io.BytesIO()
        summary = classify_stream(io.BytesIO(data), results=results, errors=errors, classifier=kwargs.pop(
            "with_classifier", classifier), spec=spec, text_columns=text_columns, limits=limits or Limits(),
            batch_size=batch_size, **kwargs)
        raw = results.getvalue()
        unzip = gzip.decompress if spec.gzip else (lambda b: b)
        return Run(summary, unzip(raw) if raw else b"", unzip(errors.getvalue()) if errors.getvalue() else b"", raw)

    return run
