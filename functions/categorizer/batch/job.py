"""One file, end to end: decide whether to run, stream, classify, publish atomically, manifest last.

Idempotency lives in the outputs themselves: the manifest is written last and names the exact input
(bucket, key, ETag, version). A delivery whose manifest already exists is a duplicate and does
nothing; a crash before the manifest leaves at most complete objects that a retry rewrites with the
same bytes (the output depends only on the input, the model and the batch size).
"""

from __future__ import annotations

from typing import Protocol

from categorizer.adapters.s3_objects import ObjectChangedError, aborted_on_error
from categorizer.batch.keys import (
    CONFIG_OBJECT_NAME,
    OutputKeys,
    UnsafeKeyError,
    file_spec_or_failure,
    plan_output_keys,
)
from categorizer.batch.notifications import ObjectCreated
from categorizer.batch.report import JobDependencies, JobOutcome, JobStatus, Report, is_current, is_duplicate
from categorizer.batch.text_columns import resolve_text_columns
from categorizer.files.errors import FileFailure
from categorizer.files.formats import FileSpec, Limits
from categorizer.files.pipeline import classify_stream
from categorizer.files.xlsx_format import CONTENT_TYPE as WORKBOOK_CONTENT_TYPE
from categorizer.files.xlsx_format import SHEET_METADATA_KEY
from categorizer.review.queueing import DoubtfulRows, queue_for_review


class Splitter(Protocol):
    """Fans a large file out into chunk tasks (fanout.split_file); handed in so this module never imports it."""

    def __call__(self, event: ObjectCreated, spec: FileSpec, outputs: OutputKeys, text_columns: tuple[str, ...],
                 columns_source: str, report: Report, deps: JobDependencies) -> JobOutcome: ...


def process_object(event: ObjectCreated, deps: JobDependencies, *, split: Splitter | None = None) -> JobOutcome:
    """Run the job for one created object. Raises only for transient problems (retry the message).

    `split`: how to fan out a file too large for one invocation (None: every file in one go)."""
    settings, objects = deps.settings, deps.objects
    if event.key.rsplit("/", 1)[-1] == CONFIG_OBJECT_NAME:
        return JobOutcome(JobStatus.IGNORED, event.bucket, event.key, reason="text column config object")
    if event.key.endswith("/"):
        return JobOutcome(JobStatus.IGNORED, event.bucket, event.key, reason="folder marker")
    spec, format_failure = file_spec_or_failure(event.key)
    try:
        outputs = plan_output_keys(bucket=event.bucket, key=event.key, spec=spec,
                                   ingest_prefix=settings.ingest_prefix, results_prefix=settings.results_prefix,
                                   results_bucket=settings.results_bucket)
    except UnsafeKeyError as exc:
        return JobOutcome(JobStatus.REFUSED, event.bucket, event.key, reason=str(exc))
    if is_duplicate(objects, outputs, event):
        return JobOutcome(JobStatus.DUPLICATE, event.bucket, event.key, outputs=outputs)
    current = objects.head(event.bucket, event.key)
    if current is None or not is_current(event, current):
        # Deleted or overwritten since this event: the newer upload has its own event and job.
        return JobOutcome(JobStatus.SUPERSEDED, event.bucket, event.key, outputs=outputs)

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
    if split is not None and spec.format.splittable and \
            estimated_bytes(current.size, spec) > settings.fanout.fanout_bytes:
        return split(event, spec, outputs, text_columns, columns_source, report, deps)
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
        return JobOutcome(JobStatus.SUPERSEDED, event.bucket, event.key, outputs=outputs)
    results = objects.writer(outputs.bucket, outputs.results, content_type=spec.content_type)
    errors = objects.writer(outputs.bucket, outputs.errors, content_type=spec.content_type)
    workbook = (objects.writer(outputs.bucket, outputs.workbook, content_type=WORKBOOK_CONTENT_TYPE)
                if outputs.workbook else None)
    writers = [writer for writer in (results, errors, workbook) if writer is not None]
    review = deps.settings.review
    doubtful = DoubtfulRows(cap=review.review_max_per_file if deps.review else 0, bucket=event.bucket,
                            key=event.key, model_version=classifier.version)
    with aborted_on_error(*writers):
        with source:
            summary = classify_stream(
                source, results=results, errors=errors, classifier=classifier, spec=spec,
                text_columns=text_columns, limits=Limits(max_bytes=deps.settings.max_file_bytes),
                batch_size=deps.batch_rows, after_batch=deps.deadline_check, workbook=workbook, sheet=sheet,
                on_result=doubtful.add)
        if not summary.succeeded:
            for writer in writers:
                writer.abort()
            return report.failed(summary, columns_source)
        if not is_current(event, objects.head(event.bucket, event.key)):
            for writer in writers:
                writer.abort()
            return JobOutcome(JobStatus.SUPERSEDED, event.bucket, event.key, outputs=outputs)
        for writer in writers:
            writer.complete()
    # The results are safe; people now see the rows the model doubts (bounded, never failing the file).
    queued = queue_for_review(deps.review, doubtful.candidates(), settings=review, cap=review.review_max_per_file)
    summary.review_queued, summary.review_queue_failed = queued.written, queued.failed
    report.manifest(summary, columns_source, results_key=outputs.results)
    return JobOutcome(JobStatus.SUCCEEDED, event.bucket, event.key, summary=summary, outputs=outputs)
