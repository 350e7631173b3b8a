"""What a file job reports: its outcome, its dependencies, and the manifest it publishes last.

Shared by the whole-file job (job.py) and the chunk fan-out (fanout.py), which both import this module
and never each other: the choice between them is made one level up (service.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from categorizer.adapters.review_table import ReviewTable
from categorizer.adapters.s3_objects import ObjectInfo, S3Objects
from categorizer.adapters.task_queue import TaskQueue
from categorizer.batch.keys import OutputKeys
from categorizer.batch.notifications import ObjectCreated
from categorizer.contract import BatchSettings
from categorizer.files.errors import FileFailure
from categorizer.files.formats import FileSpec
from categorizer.files.pipeline import DEFAULT_BATCH_ROWS, JobSummary, TextClassifier, write_failure_report


class JobStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a whole-file failure, reported (errors file + failed manifest)
    DUPLICATE = "duplicate"  # a manifest for exactly this object version exists
    SUPERSEDED = "superseded"  # deleted or overwritten since the event: the newer upload has its own job
    IGNORED = "ignored"  # a folder marker or a text-column config object
    REFUSED = "refused"  # an unsafe key: nothing can be written for it
    INVALID = "invalid"  # the message is not an S3 notification
    SPLIT = "split"  # fanned out into chunk tasks
    CHUNK_DONE = "chunk_done"
    STALE = "stale"  # a fan-out task whose job is already finished


MANIFEST_VERSION = 1
# Stop this long before Lambda's timeout so the uploads can be aborted and the report written.
DEADLINE_MARGIN_MS = 30_000


@dataclass(frozen=True)
class JobOutcome:
    status: JobStatus
    bucket: str
    key: str
    summary: JobSummary | None = None
    outputs: OutputKeys | None = None
    reason: str | None = None
    chunks: int | None = None


@dataclass(frozen=True)
class JobDependencies:
    settings: BatchSettings
    objects: S3Objects
    get_classifier: Callable[[], TextClassifier]
    remaining_ms: Callable[[], int] | None = None  # Lambda's time left; None = no deadline
    batch_rows: int = DEFAULT_BATCH_ROWS
    tasks: TaskQueue | None = None  # the chunk fan-out's queue; None = every file in one invocation
    review: ReviewTable | None = None  # the review queue; None = rows that need review are not queued

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
        return JobOutcome(JobStatus.FAILED, self.event.bucket, self.event.key, summary=summary, outputs=self.outputs,
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


def event_to_dict(event: ObjectCreated) -> dict[str, Any]:
    return dataclasses.asdict(event)


class _BytesSink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)
