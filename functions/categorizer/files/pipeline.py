"""read -> classify in batches -> write results and errors. Shared by the S3 batch function and the CLI.

`classify_stream` works on binary streams (an S3 body, a multipart writer, a local file); the caller
decides where the bytes go and publishes them only if the summary says the file succeeded.
`classify_local_file` is the CLI's entry point. The stages it is made of (`open_items`, `OutputWriters`,
`classify_items`, `join_parts`) are what the batch chunk fan-out uses to split a file and join the parts.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from categorizer.engine import Prediction, TextError
from categorizer.files.csv_format import CsvReader, CsvWriter
from categorizer.files.errors import FileFailure, RowError, excerpt
from categorizer.files.formats import FileFormat, FileSpec, Limits, detect_format
from categorizer.files.json_format import (
    ARRAY_OPEN,
    ARRAY_SEPARATOR,
    JsonArrayReader,
    JsonArrayWriter,
    JsonLinesReader,
    JsonLinesWriter,
    array_close,
)
from categorizer.files.rows import DEFAULT_TEXT_COLUMNS, InputRow, parse_text_columns
from categorizer.files.streams import (
    CHUNK_BYTES,
    DetachableSink,
    open_binary_input,
    open_binary_output,
    open_text_input,
)
from categorizer.files.xlsx_format import XlsxReader, XlsxWriter

DEFAULT_BATCH_ROWS = 256
OUTPUT_COLUMNS = ("predicted_label", "confidence", "needs_review", "out_of_scope", "novelty", "top_k",
                  "model_version")
# An input column that already has one of our names keeps it; ours becomes e.g. "confidence_categorizer".
CLASH_SUFFIX = "_categorizer"
ERROR_COLUMNS = ("row", "line", "reason", "message", "excerpt")


class TextClassifier(Protocol):
    """What the pipeline needs from categorizer.engine.Classifier."""

    version: str

    def classify(self, texts: Sequence[str], *, top_k: int = 3) -> list[Prediction | TextError]: ...


def output_column_names(input_columns: Iterable[str]) -> dict[str, str]:
    """Our column names, suffixed where an input column already uses the name (never overwritten)."""
    taken = set(input_columns)
    names: dict[str, str] = {}
    for base in OUTPUT_COLUMNS:
        name, attempt = base, 1
        while name in taken:
            name = f"{base}{CLASH_SUFFIX}" if attempt == 1 else f"{base}{CLASH_SUFFIX}_{attempt}"
            attempt += 1
        taken.add(name)
        names[base] = name
    return names


_DEFAULT_NAMES = output_column_names(())


@dataclass
class JobSummary:
    """What happened to one file. rows_in = rows_classified + rows_rejected, always."""

    format: str
    gzip: bool
    text_columns: list[str]
    model_version: str | None
    rows_in: int = 0
    rows_classified: int = 0
    rows_rejected: int = 0
    needs_review: int = 0
    out_of_scope: int = 0
    truncated: int = 0
    review_queued: int = 0  # rows that need review put in front of people (the batch job's review queue)
    review_queue_failed: int = 0  # ...that the queue could not take (counted, never failing the file)
    counts: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    output_columns: dict[str, str] = field(default_factory=lambda: dict(_DEFAULT_NAMES))
    delimiter: str | None = None
    bom: bool = False
    encoding: dict[str, Any] | None = None  # TextEncoding.to_dict() of a text file
    sheet: str | None = None  # the worksheet read, for a workbook
    status: str = "succeeded"
    failure_reason: str | None = None
    failure_message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def describe(self, layout: Layout) -> None:
        self.delimiter = layout.delimiter if layout.format is FileFormat.CSV else None
        self.bom = layout.bom
        self.encoding = layout.encoding
        self.sheet = layout.sheet
        self.output_columns = layout.output_columns

    def add_counts(self, other: JobSummary) -> None:
        """Add a chunk's counts (the fan-out join sums its parts)."""
        self.rows_in += other.rows_in
        self.rows_classified += other.rows_classified
        self.rows_rejected += other.rows_rejected
        self.needs_review += other.needs_review
        self.out_of_scope += other.out_of_scope
        self.truncated += other.truncated
        self.review_queued += other.review_queued
        self.review_queue_failed += other.review_queue_failed
        self.counts.update(other.counts)
        self.rejected_by_reason.update(other.rejected_by_reason)

    def fail(self, failure: FileFailure) -> None:
        self.status = "failed"
        self.failure_reason = failure.reason
        self.failure_message = failure.message

    @classmethod
    def counts_from_dict(cls, data: dict[str, Any]) -> JobSummary:
        """The counting fields of a summary written by to_dict (a chunk's part summary)."""
        summary = cls(format=data["format"], gzip=data["gzip"], text_columns=list(data["text_columns"]),
                      model_version=data["model_version"])
        for name in ("rows_in", "rows_classified", "rows_rejected", "needs_review", "truncated"):
            setattr(summary, name, int(data[name]))
        summary.out_of_scope = int(data.get("out_of_scope", 0))  # parts written before the column existed
        queued = data.get("review_queue") or {}
        summary.review_queued, summary.review_queue_failed = int(queued.get("queued", 0)), int(queued.get("failed", 0))
        summary.counts.update(data["counts"])
        summary.rejected_by_reason.update(data["rejected_by_reason"])
        return summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "failure": {"reason": self.failure_reason, "message": self.failure_message}
            if self.failure_reason else None,
            "format": self.format,
            "gzip": self.gzip,
            "delimiter": self.delimiter,
            "bom": self.bom,
            **(self.encoding or {"encoding": None}),
            "sheet": self.sheet,
            "text_columns": self.text_columns,
            "rows_in": self.rows_in,
            "rows_classified": self.rows_classified,
            "rows_rejected": self.rows_rejected,
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "counts": dict(sorted(self.counts.items())),
            "needs_review": self.needs_review,
            "out_of_scope": self.out_of_scope,
            "truncated": self.truncated,
            "review_queue": {"queued": self.review_queued, "failed": self.review_queue_failed},
            "output_columns": self.output_columns,
            "model_version": self.model_version,
        }


def _top_k(prediction: Prediction) -> list[dict[str, Any]]:
    return [{"label": item.label, "score": item.score} for item in prediction.top_k]


def _error_cells(error: RowError) -> list[str]:
    return ["" if error.row is None else str(error.row), "" if error.line is None else str(error.line),
            error.reason, error.message, error.excerpt]


def _error_object(error: RowError) -> dict[str, Any]:
    return dict(zip(ERROR_COLUMNS, [error.row, error.line, error.reason, error.message, error.excerpt], strict=True))


@dataclass(frozen=True)
class Layout:
    """What the writers need to know about an input file (and all a chunk worker needs from the split)."""

    format: FileFormat
    gzip: bool
    columns: tuple[str, ...] = ()  # the CSV header or the sheet's header row
    delimiter: str = ","
    bom: bool = False  # the output starts with a UTF-8 BOM (the input had a BOM; always for a workbook's CSV)
    encoding: dict[str, Any] | None = None  # how a text input was decoded (TextEncoding.to_dict())
    sheet: str | None = None

    @property
    def output_columns(self) -> dict[str, str]:
        return output_column_names(self.columns) if self.format.tabular else dict(_DEFAULT_NAMES)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format.value, "gzip": self.gzip, "columns": list(self.columns),
                "delimiter": self.delimiter, "bom": self.bom, "encoding": self.encoding, "sheet": self.sheet}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        return cls(format=FileFormat(data["format"]), gzip=bool(data["gzip"]), columns=tuple(data["columns"]),
                   delimiter=str(data["delimiter"]), bom=bool(data["bom"]), encoding=data.get("encoding"),
                   sheet=data.get("sheet"))


def open_items(source: BinaryIO, *, spec: FileSpec, text_columns: Sequence[str], limits: Limits,
               sheet: str | None = None) -> tuple[Layout, Iterator[InputRow | RowError]]:
    """Read stage: the file's layout, and its records (rows, or rows already rejected) in order.

    A problem with the file as a whole raises FileFailure, here or while iterating. `sheet` picks a
    workbook's sheet (default: the first).
    """
    binary = open_binary_input(source, gzip_compressed=spec.gzip, max_bytes=limits.max_bytes)
    if spec.format is FileFormat.XLSX:
        workbook = XlsxReader(binary, text_columns=text_columns, limits=limits, sheet=sheet)
        # The CSV beside the workbook starts with a BOM so that Excel opens it as UTF-8.
        return Layout(FileFormat.XLSX, False, tuple(workbook.columns), bom=True, sheet=workbook.sheet), \
            workbook.rows()
    if spec.format is FileFormat.CSV:
        text, encoding = open_text_input(binary, newline="")  # the csv module handles line endings itself
        reader = CsvReader(text, text_columns=text_columns, limits=limits, encoding=encoding.name)
        layout = Layout(FileFormat.CSV, spec.gzip, tuple(reader.columns), reader.delimiter, bool(encoding.bom),
                        encoding=encoding.to_dict())
        return layout, reader.rows()
    text, encoding = open_text_input(binary, newline=None)
    json_reader: JsonArrayReader | JsonLinesReader = (JsonArrayReader if spec.format is FileFormat.JSON
                                                      else JsonLinesReader)(text, text_columns=text_columns,
                                                                           limits=limits)
    return Layout(spec.format, spec.gzip, bom=bool(encoding.bom), encoding=encoding.to_dict()), \
        json_reader.rows()


class OutputWriters:
    """The results and errors writers for a layout.

    `part=True` writes one part of a file for the chunk fan-out: uncompressed, no CSV header, no JSON
    array brackets; `join_parts` adds those, so the joined file has the bytes a single run writes.
    """

    def __init__(self, layout: Layout, results: BinaryIO, errors: BinaryIO, *, part: bool = False,
                 workbook: BinaryIO | None = None) -> None:
        """`workbook`: where a workbook input's results go as a workbook (results get them as CSV)."""
        self.layout = layout
        compress = layout.gzip and not part
        results_out = open_binary_output(results, gzip_compressed=compress)
        errors_out = open_binary_output(errors, gzip_compressed=compress)
        self._names = layout.output_columns
        self._workbook: XlsxWriter | None = None
        if workbook is not None and layout.format is FileFormat.XLSX:
            self._workbook = XlsxWriter(open_binary_output(workbook, gzip_compressed=False),
                                        columns=[*layout.columns, *self._names.values()])
        if layout.format.tabular:
            header = None if part else [*layout.columns, *self._names.values()]
            self._csv_results = CsvWriter(results_out, columns=header, delimiter=layout.delimiter, bom=layout.bom)
            self._csv_errors = CsvWriter(errors_out, columns=None if part else ERROR_COLUMNS,
                                         delimiter=layout.delimiter, bom=layout.bom)
            self._writers: tuple[Any, Any] = (self._csv_results, self._csv_errors)
        elif layout.format is FileFormat.JSON:
            self._writers = (JsonArrayWriter(results_out, framing=not part),
                             JsonArrayWriter(errors_out, framing=not part))
        else:
            self._writers = (JsonLinesWriter(results_out), JsonLinesWriter(errors_out))

    def write_result(self, row: InputRow, prediction: Prediction, version: str) -> None:
        if self.layout.format.tabular:
            top_k = json.dumps(_top_k(prediction), ensure_ascii=False, separators=(",", ":"))
            self._csv_results.write([
                *row.record,
                prediction.label,
                f"{prediction.confidence:.6f}",
                "true" if prediction.needs_review else "false",
                "true" if prediction.out_of_scope else "false",
                f"{prediction.novelty:.6f}",
                top_k,
                version,
            ])
            if self._workbook is not None:
                cells = row.cells if row.cells is not None else row.record
                self._workbook.write([*cells, prediction.label, round(prediction.confidence, 6),
                                      prediction.needs_review, prediction.out_of_scope,
                                      round(prediction.novelty, 6), top_k, version])
            return
        record = row.record
        assert isinstance(record, dict)
        # JSON objects need not share keys, so a clash is resolved per object.
        names = _DEFAULT_NAMES if _DEFAULT_NAMES.keys().isdisjoint(record) else output_column_names(record)
        self._writers[0].write({
            **record,
            names["predicted_label"]: prediction.label,
            names["confidence"]: prediction.confidence,
            names["needs_review"]: prediction.needs_review,
            names["out_of_scope"]: prediction.out_of_scope,
            names["novelty"]: prediction.novelty,
            names["top_k"]: _top_k(prediction),
            names["model_version"]: version,
        })

    def write_error(self, error: RowError) -> None:
        if self.layout.format.tabular:
            self._csv_errors.write(_error_cells(error))
        else:
            self._writers[1].write(_error_object(error))

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._workbook is not None:
            self._workbook.close()


ResultHook = Callable[[InputRow, Prediction], None]


def classify_items(items: Iterable[InputRow | RowError], writers: OutputWriters, classifier: TextClassifier, *,
                   summary: JobSummary, batch_size: int = DEFAULT_BATCH_ROWS, top_k: int = 3,
                   after_batch: Callable[[JobSummary], None] | None = None,
                   on_result: ResultHook | None = None) -> None:
    """Classify stage: `batch_size` records at a time, in order, into the writers; counts into `summary`.
    `on_result` sees every classified row (the batch job collects the ones that need review)."""
    batch: list[InputRow | RowError] = []
    for item in items:
        batch.append(item)
        if len(batch) >= batch_size:
            _classify_batch(batch, writers, classifier, top_k, summary, on_result)
            batch.clear()
            if after_batch:
                after_batch(summary)
    _classify_batch(batch, writers, classifier, top_k, summary, on_result)


def classify_stream(
    source: BinaryIO,
    *,
    results: BinaryIO,
    errors: BinaryIO,
    classifier: TextClassifier,
    spec: FileSpec,
    text_columns: Sequence[str] = DEFAULT_TEXT_COLUMNS,
    limits: Limits = Limits(),  # noqa: B008 - frozen dataclass
    batch_size: int = DEFAULT_BATCH_ROWS,
    top_k: int = 3,
    after_batch: Callable[[JobSummary], None] | None = None,
    workbook: BinaryIO | None = None,
    sheet: str | None = None,
    on_result: ResultHook | None = None,
) -> JobSummary:
    """Classify every record of `source` (format and gzip per `spec`), writing `results` and `errors`.

    Rows are classified `batch_size` at a time, in input order; both outputs keep input order, so the
    same input and batch size always give the same bytes. A whole-file problem returns a summary with
    status "failed" and its reason: whatever was written to `results` and `errors` must then be
    discarded (see write_failure_report). `after_batch` runs after each batch (a deadline check, say);
    a FileFailure it raises fails the file. For a workbook input, `sheet` picks the sheet and
    `workbook` (if given) receives the results as a workbook too.
    """
    summary = JobSummary(format=spec.format.value, gzip=spec.gzip, text_columns=list(text_columns),
                         model_version=classifier.version)
    results_sink, errors_sink = DetachableSink(results), DetachableSink(errors)
    workbook_sink = DetachableSink(workbook) if workbook is not None else None
    try:
        layout, items = open_items(source, spec=spec, text_columns=text_columns, limits=limits, sheet=sheet)
        summary.describe(layout)
        writers = OutputWriters(layout, results_sink, errors_sink, workbook=workbook_sink)
        classify_items(items, writers, classifier, summary=summary, batch_size=batch_size, top_k=top_k,
                       after_batch=after_batch, on_result=on_result)
        writers.close()
    except FileFailure as failure:
        summary.fail(failure)
    except BaseException:
        _detach(results_sink, errors_sink, workbook_sink)
        raise
    if not summary.succeeded:
        _detach(results_sink, errors_sink, workbook_sink)
    return summary


def _detach(*sinks: DetachableSink | None) -> None:
    for sink in sinks:
        if sink is not None:
            sink.detach_sink()


def _classify_batch(batch: list[InputRow | RowError], writers: OutputWriters, classifier: TextClassifier,
                    top_k: int, summary: JobSummary, on_result: ResultHook | None = None) -> None:
    texts = [item.text for item in batch if isinstance(item, InputRow) and item.text]
    predictions = iter(classifier.classify(texts, top_k=top_k) if texts else [])
    version = classifier.version
    for item in batch:
        summary.rows_in += 1
        if isinstance(item, InputRow):
            if not item.text:
                item = RowError(item.row, item.line, "empty_text", "the text column(s) are empty",
                                excerpt(item.raw))
            else:
                result = next(predictions)
                if isinstance(result, TextError):
                    item = RowError(item.row, item.line, result.code, result.message, excerpt(item.raw))
                else:
                    writers.write_result(item, result, version)
                    if on_result is not None:
                        on_result(item, result)
                    summary.rows_classified += 1
                    summary.counts[result.label] += 1
                    summary.needs_review += result.needs_review
                    summary.out_of_scope += result.out_of_scope
                    summary.truncated += result.truncated
                    continue
        writers.write_error(item)
        summary.rows_rejected += 1
        summary.rejected_by_reason[item.reason] += 1


def _copy(source: BinaryIO, target: BinaryIO, first: bytes = b"") -> None:
    if first:
        target.write(first)
    while chunk := source.read(CHUNK_BYTES):
        target.write(chunk)


def join_parts(layout: Layout, parts: Iterable[BinaryIO], sink: BinaryIO, *, errors: bool) -> None:
    """Join part streams (from OutputWriters(part=True)) into the complete results or errors file."""
    out = open_binary_output(sink, gzip_compressed=layout.gzip)
    if layout.format is FileFormat.CSV:
        header = io.BytesIO()
        columns = ERROR_COLUMNS if errors else [*layout.columns, *layout.output_columns.values()]
        CsvWriter(open_binary_output(header, gzip_compressed=False), columns=columns, delimiter=layout.delimiter,
                  bom=layout.bom).close()
        out.write(header.getvalue())
        for part in parts:
            _copy(part, out)
    elif layout.format is FileFormat.JSON:
        out.write(ARRAY_OPEN)
        empty = True
        for part in parts:
            first = part.read(CHUNK_BYTES)
            if first:
                _copy(part, out, first if empty else ARRAY_SEPARATOR + first)
                empty = False
        out.write(array_close(empty))
    else:
        for part in parts:
            _copy(part, out)
    out.close()


def write_failure_report(sink: BinaryIO, spec: FileSpec, reason: str, message: str) -> None:
    """The errors file of a failed file: one row, with no row number, saying why the file failed."""
    error = RowError(None, None, reason, message, "")
    target = open_binary_output(sink, gzip_compressed=spec.gzip)
    if spec.format.tabular:
        writer = CsvWriter(target, columns=ERROR_COLUMNS)
        writer.write(_error_cells(error))
        writer.close()
        return
    json_writer = JsonArrayWriter(target) if spec.format is FileFormat.JSON else JsonLinesWriter(target)
    json_writer.write(_error_object(error))
    json_writer.close()


@dataclass(frozen=True)
class LocalResult:
    summary: JobSummary
    results_path: Path | None  # None when the file failed
    errors_path: Path
    workbook_path: Path | None = None  # a workbook input's results as a workbook


def _output_stem(path: Path, *extensions: str) -> str:
    name = path.name
    for extension in extensions:
        suffix = f".{extension}"
        if name.lower().endswith(suffix.lower()):
            return name[: -len(suffix)]
    return name


def errors_path_for(results_path: Path, spec: FileSpec) -> Path:
    """`out.csv` -> `out.errors.csv` (the extension of the input is used; CSV for a workbook)."""
    stem = _output_stem(results_path, spec.output_extension, spec.extension)
    return results_path.with_name(f"{stem}.errors.{spec.output_extension}")


def local_output_paths(results_path: Path, spec: FileSpec) -> tuple[Path, Path | None]:
    """Where classify-file writes the results (CSV for a workbook) and, for a workbook, the workbook.

    `--out out.xlsx` or `--out out.csv` for `in.xlsx` both give out.csv and out.xlsx.
    """
    if spec.format is not FileFormat.XLSX:
        return results_path, None
    stem = _output_stem(results_path, "xlsx", "csv")
    return results_path.with_name(f"{stem}.csv"), results_path.with_name(f"{stem}.xlsx")


def classify_local_file(
    input_path: Path | str,
    results_path: Path | str,
    *,
    classifier: TextClassifier,
    text_columns: str | Sequence[str] | None = None,
    errors_path: Path | str | None = None,
    limits: Limits = Limits(),  # noqa: B008 - frozen dataclass
    batch_size: int = DEFAULT_BATCH_ROWS,
    top_k: int = 3,
    sheet: str | None = None,
    after_batch: Callable[[JobSummary], None] | None = None,
) -> LocalResult:
    """The CLI's `classify-file`: same format detection, reader, engine and writer as the S3 function.

    Outputs are written to temporary files and renamed into place, so a failed or interrupted run never
    leaves a half-written results file. A failed file gets an errors file saying why, and no results.
    """
    input_path = Path(input_path)
    spec = detect_format(input_path.name)
    columns = parse_text_columns(text_columns)
    results_path, workbook_path = local_output_paths(Path(results_path), spec)
    errors_target = Path(errors_path) if errors_path else errors_path_for(results_path, spec)
    results_tmp = _temp_beside(results_path)
    errors_tmp = _temp_beside(errors_target)
    workbook_tmp = _temp_beside(workbook_path) if workbook_path else None
    try:
        with input_path.open("rb") as source, results_tmp.open("wb") as results, errors_tmp.open("wb") as errors, \
                (workbook_tmp.open("wb") if workbook_tmp else io.BytesIO()) as workbook:
            summary = classify_stream(source, results=results, errors=errors, classifier=classifier, spec=spec,
                                      text_columns=columns, limits=limits, batch_size=batch_size, top_k=top_k,
                                      after_batch=after_batch, sheet=sheet,
                                      workbook=workbook if workbook_tmp else None)
        if not summary.succeeded:
            with errors_tmp.open("wb") as errors:
                write_failure_report(errors, spec, summary.failure_reason or "failed", summary.failure_message or "")
            os.replace(errors_tmp, errors_target)
            return LocalResult(summary, None, errors_target)
        os.replace(results_tmp, results_path)
        os.replace(errors_tmp, errors_target)
        if workbook_tmp and workbook_path:
            os.replace(workbook_tmp, workbook_path)
        return LocalResult(summary, results_path, errors_target, workbook_path)
    finally:
        for temporary in (results_tmp, errors_tmp, workbook_tmp):
            if temporary is not None:
                temporary.unlink(missing_ok=True)


def _temp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    return Path(name)
