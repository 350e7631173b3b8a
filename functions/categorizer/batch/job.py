"""One file, end to end: decide whether to run, stream, classify, publish atomically, manifest last.

Idempotency lives in the outputs themselves: the manifest is written last and names the exact input
(bucket, key, ETag, version). A delivery whose manifest already exists is a duplicate and does
nothing; a crash before the manifest leaves at most complete objects that a retry rewrites with the
same bytes (the output depends only on the input, the model and the batch size).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from categorizer.adapters.s3_objects import ObjectChangedError, ObjectInfo, S3Objects
from categorizer.adapters.task_queue import TaskQueue
from categorizer.batch.keys import (
    CONFIG_OBJECT_NAME,
    OutputKeys,
    UnsafeKeyError,
    file_spec_or_failure,
    plan_output_keys,
)
from categorizer.batch.notifications import ObjectCreated
from categorizer.batch.text_columns import resolve_text_columns
from categorizer.files.errors import FileFailure
from categorizer.files.formats import FileSpec, Limits
from categorizer.files.pipeline import (
    DEFAULT_BATCH_ROWS,
    JobSummary,
    TextClassifier,
    classify_stream,
    write_failure_report,
)
from categorizer.files.xlsx_format import CONTENT_TYPE as WORKBOOK_CONTENT_TYPE
from categorizer.files.xlsx_format import SHEET_METADATA_KEY
from categorizer.settings import Settings

MANIFEST_VERSION = 1
# Stop this long before Lambda's timeout so the uploads can be aborted and the report written.
DEADLINE_MARGIN_MS = 30_000


@dataclass(frozen=True)
class JobOutcome:
    """status: succeeded | failed (whole-file, reported) | duplicate | superseded | ignored | refused |
    split (fanned out into chunks) | chunk_done | stale (a task whose job is already finished)."""

    status: str
    bucket: str
    key: str
    summary: JobSummary | None = None
    outputs: OutputKeys | None = None
    reason: str | None = None
    chunks: int | None = None


@dataclass(frozen=True)
class JobDependencies:
    settings: Settings
    objects: S3Objects
    get_classifier: Callable[[], TextClassifier]
    remaining_ms: Callable[[], int] | None = None  # Lambda's time left; None = no deadline
    batch_rows: int = DEFAULT_BATCH_ROWS
    tasks: TaskQueue | None = None  # the chunk fan-out's queue; None = every file in one invocation

    def deadline_check(self, summary: JobSummary) -> None:
        if self.remaining_ms is not None and self.remaining_ms() < DEADLINE_MARGIN_MS:
            raise FileFailure("time_budget_exceeded",
                              f"the invocation's time ran out after {summary.rows_in:,} rows; split the file "
                              "into smaller files (see docs/batch.md)")


def is_current(event: ObjectCreated, info: ObjectInfo | None) -> bool:
    """Is the object still the one the event announced? Outputs are per key, so only the latest counts."""
    if info is None:
        return False
    if event.version_id:
        return info.version_id == event.version_id
    return not event.etag or info.etag == event.etag


def is_duplicate(objects: S3Objects, outputs: OutputKeys, event: ObjectCreated) -> bool:
    """A manifest for exactly this object version exists: the job is done (succeeded or failed)."""
    previous = objects.read_small(outputs.bucket, outputs.manifest, max_bytes=1024 * 1024)
    if previous is None:
        return False
    recorded = json.loads(previous).get("input", {})
    return (recorded.get("bucket"), recorded.get("key"), recorded.get("etag"), recorded.get("version_id")) == (
        event.bucket, event.key, event.etag, event.version_id)


class Report:
    """Publishes what happened to one file: the failure report if any, and the manifest, always last."""

    def __init__(self, objects: S3Objects, event: ObjectCreated, spec: FileSpec, outputs: OutputKeys, *,
                 size: int, started: datetime | None = None) -> None:
        self.objects, self.event, self.spec, self.outputs, self.size = objects, event, spec, outputs, size
        self.started = started or datetime.now(UTC)

    def failed(self, summary: JobSummary, columns_source: str | None) -> JobOutcome:
        report = _BytesSink()
        write_failure_report(report, self.spec, summary.failure_reason or "failed", summary.failure_message or "")
        self.objects.put(self.outputs.bucket, self.outputs.errors, bytes(report.data),
                         content_type=self.spec.content_type)
        self.manifest(summary, columns_source, results_key=None)
        return JobOutcome("failed", self.event.bucket, self.event.key, summary=summary, outputs=self.outputs,
                          reason=summary.failure_reason)

    def failure(self, failure: FileFailure, columns_source: str | None = None) -> JobOutcome:
        summary = JobSummary(format=self.spec.format.value, gzip=self.spec.gzip, text_columns=[],
                             model_version=None)
        summary.fail(failure)
        return self.failed(summary, columns_source)

    def manifest(self, summary: JobSummary, columns_source: str | None, *, results_key: str | None,
                 extra: dict[str, Any] | None = None) -> None:
        finished = datetime.now(UTC)
        event = self.event
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "input": {"bucket": event.bucket, "key": event.key, "etag": event.etag,
                      "version_id": event.version_id, "size": self.size, "sequencer": event.sequencer},
            "outputs": {"bucket": self.outputs.bucket, "results": results_key, "errors": self.outputs.errors,
                        "manifest": self.outputs.manifest,
                        "workbook": self.outputs.workbook if results_key and self.outputs.workbook else None},
            **summary.to_dict(),
            "text_columns_source": columns_source,
            **(extra or {}),
            "started_at": self.started.isoformat(timespec="milliseconds"),
            "finished_at": finished.isoformat(timespec="milliseconds"),
            "duration_seconds": round((finished - self.started).total_seconds(), 3),
        }
        body = json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8")
        self.objects.put(self.outputs.bucket, self.outputs.manifest, body, content_type="application/json")


def process_object(event: ObjectCreated, deps: JobDependencies) -> JobOutcome:
    """Run the job for one created object. Raises only for transient problems (retry the message)."""
    settings, objects = deps.settings, deps.objects
    if event.key.rsplit("/", 1)[-1] == CONFIG_OBJECT_NAME:
        return JobOutcome("ignored", event.bucket, event.key, reason="text column config object")
    if event.key.endswith("/"):
        return JobOutcome("ignored", event.bucket, event.key, reason="folder marker")
    spec, format_failure = file_spec_or_failure(event.key)
    try:
        outputs = plan_output_keys(bucket=event.bucket, key=event.key, spec=spec,
                                   ingest_prefix=settings.ingest_prefix, results_prefix=settings.results_prefix,
                                   results_bucket=settings.results_bucket)
    except UnsafeKeyError as exc:
        return JobOutcome("refused", event.bucket, event.key, reason=str(exc))
    if is_duplicate(objects, outputs, event):
        return JobOutcome("duplicate", event.bucket, event.key, outputs=outputs)
    current = objects.head(event.bucket, event.key)
    if current is None or not is_current(event, current):
        # Deleted or overwritten since this event: the newer upload has its own event and job.
        return JobOutcome("superseded", event.bucket, event.key, outputs=outputs)

    report = Report(objects, event, spec, outputs, size=current.size)
    if format_failure:
        return report.failure(format_failure)
    if current.size > settings.max_file_bytes:
        return report.failure(FileFailure("file_too_large", f"the file is {current.size:,} bytes; the limit is "
                                                            f"{settings.max_file_bytes:,}"))
    try:
        text_columns, columns_source = resolve_text_columns(
            key=event.key, metadata=current.metadata, ingest_prefix=settings.ingest_prefix,
            read_config=lambda config_key: objects.read_small(event.bucket, config_key))
    except FileFailure as failure:
        return report.failure(failure)
    if deps.tasks is not None and spec.format.splittable and \
            estimated_bytes(current.size, spec) > settings.fanout_bytes:
        from categorizer.batch.fanout import split_file  # fanout imports this module

        return split_file(event, spec, outputs, text_columns, columns_source, report, deps)
    return _classify_in_one_go(event, spec, outputs, text_columns, columns_source, report, deps,
                               sheet=current.metadata.get(SHEET_METADATA_KEY) or None)


GZIP_SIZE_FACTOR = 4  # text compresses about 4x: what a gzip file weighs once decompressed, for planning


def estimated_bytes(size: int, spec: FileSpec) -> int:
    return size * GZIP_SIZE_FACTOR if spec.gzip else size


def _classify_in_one_go(event: ObjectCreated, spec: FileSpec, outputs: OutputKeys, text_columns: tuple[str, ...],
                        columns_source: str, report: Report, deps: JobDependencies, *,
                        sheet: str | None = None) -> JobOutcome:
    objects = deps.objects
    classifier = deps.get_classifier()  # a model that cannot load is transient: raise, retry
    try:
        source = objects.open_read(event.bucket, event.key, etag=event.etag or None, version_id=event.version_id)
    except ObjectChangedError:
        return JobOutcome("superseded", event.bucket, event.key, outputs=outputs)
    results = objects.writer(outputs.bucket, outputs.results, content_type=spec.content_type)
    errors = objects.writer(outputs.bucket, outputs.errors, content_type=spec.content_type)
    workbook = (objects.writer(outputs.bucket, outputs.workbook, content_type=WORKBOOK_CONTENT_TYPE)
                if outputs.workbook else None)
    writers = [writer for writer in (results, errors, workbook) if writer is not None]
    try:
        with source:
            summary = classify_stream(
                source, results=results, errors=errors, classifier=classifier, spec=spec,
                text_columns=text_columns, limits=Limits(max_bytes=deps.settings.max_file_bytes),
                batch_size=deps.batch_rows, after_batch=deps.deadline_check, workbook=workbook,
                sheet=sheet)
        if not summary.succeeded:
            for writer in writers:
                writer.abort()
            return report.failed(summary, columns_source)
        if not is_current(event, objects.head(event.bucket, event.key)):
            for writer in writers:
                writer.abort()
            return JobOutcome("superseded", event.bucket, event.key, outputs=outputs)
        for writer in writers:
            writer.complete()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    report.manifest(summary, columns_source, results_key=outputs.results)
    return JobOutcome("succeeded", event.bucket, event.key, summary=summary, outputs=outputs)


def event_to_dict(event: ObjectCreated) -> dict[str, Any]:
    return dataclasses.asdict(event)


class _BytesSink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)
