"""Chunk fan-out for files too large for one invocation: split, classify chunks in parallel, join.

SQS fan-out on the batch queue itself (no Step Functions): the invocation that receives the S3
notification streams the file once, writes its records in chunks of `chunk_rows` under
`<results prefix>_work/<job id>/`, writes `plan.json`, and sends one chunk task per chunk to the
queue. Each chunk task classifies its records into two part objects (results and errors, no header)
and a part summary (its done marker). The task that sees every summary present sends a join task,
which concatenates the parts behind the header (gzip-compressing if the input was), sums the
summaries into the manifest, and deletes the work prefix.

Chunks hold a multiple of the classify batch size, so every batch is the one a single invocation
would run: the joined files are byte-identical to a single invocation's. Every step is idempotent
(deterministic objects, done markers, the manifest check), so SQS redeliveries and retries are safe.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from typing import Any, BinaryIO

from categorizer.adapters.s3_objects import ObjectChangedError, S3Objects, aborted_on_error
from categorizer.batch.keys import WORK_FOLDER, OutputKeys, file_spec_or_failure
from categorizer.batch.notifications import ObjectCreated
from categorizer.batch.report import (
    JobDependencies,
    JobOutcome,
    JobStatus,
    Report,
    event_to_dict,
    is_current,
    is_duplicate,
)
from categorizer.files.errors import FileFailure, RowError, excerpt
from categorizer.files.formats import FileSpec, Limits
from categorizer.files.json_format import dumps_json
from categorizer.files.pipeline import (
    JobSummary,
    Layout,
    OutputWriters,
    classify_items,
    join_parts,
    open_items,
)
from categorizer.files.rows import InputRow
from categorizer.review.queueing import DoubtfulRows, queue_for_review

TASK_FIELD = "categorizer_task"
CHUNK_TASK, JOIN_TASK = "chunk", "join"
_PART_TYPE = "application/octet-stream"


def job_id(event: ObjectCreated) -> str:
    identity = "\n".join([event.bucket, event.key, event.etag, event.version_id or ""])
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:24]


def _chunk_key(prefix: str, index: int) -> str:
    return f"{prefix}chunks/{index:05d}.jsonl"


def _part_key(prefix: str, index: int, kind: str) -> str:
    return f"{prefix}parts/{index:05d}.{kind}"


def encode_item(item: InputRow | RowError) -> bytes:
    if isinstance(item, InputRow):
        data: dict[str, Any] = {"row": item.row, "line": item.line, "record": item.record, "text": item.text,
                                "raw": excerpt(item.raw)}  # only ever used for an excerpt
    else:
        data = {"row": item.row, "line": item.line, "reason": item.reason, "message": item.message,
                "excerpt": item.excerpt}
    return dumps_json(data) + b"\n"


def decode_items(stream: BinaryIO) -> Iterator[InputRow | RowError]:
    for line in io.TextIOWrapper(stream, encoding="utf-8"):
        data = json.loads(line)
        if "reason" in data:
            yield RowError(data["row"], data["line"], data["reason"], data["message"], data["excerpt"])
        else:
            yield InputRow(data["row"], data["line"], data["record"], data["text"], data["raw"])


def split_file(event: ObjectCreated, spec: FileSpec, outputs: OutputKeys, text_columns: tuple[str, ...],
               columns_source: str, report: Report, deps: JobDependencies) -> JobOutcome:
    """Stream the file once into chunk objects, write the plan, send the chunk tasks."""
    settings, objects = deps.settings, deps.objects
    assert deps.tasks is not None
    prefix = f"{settings.results_prefix}{WORK_FOLDER}{job_id(event)}/"
    rows_per_chunk = -(-max(settings.fanout.chunk_rows, 1) // deps.batch_rows) * deps.batch_rows  # whole batches
    try:
        source = objects.open_read(event.bucket, event.key, etag=event.etag or None, version_id=event.version_id)
    except ObjectChangedError:
        return JobOutcome(JobStatus.SUPERSEDED, event.bucket, event.key, outputs=outputs)
    progress = JobSummary(format=spec.format.value, gzip=spec.gzip, text_columns=list(text_columns),
                          model_version=None)
    chunks, writer = 0, None
    try:
        with source:
            layout, items = open_items(source, spec=spec, text_columns=text_columns,
                                       limits=Limits(max_bytes=settings.max_file_bytes))
            for item in items:
                if writer is None:
                    writer = objects.writer(outputs.bucket, _chunk_key(prefix, chunks + 1),
                                            content_type="application/x-ndjson")
                writer.write(encode_item(item))
                progress.rows_in += 1
                if progress.rows_in % rows_per_chunk == 0:
                    writer.complete()
                    writer, chunks = None, chunks + 1
                    deps.deadline_check(progress)
            if writer is not None:
                writer.complete()
                writer, chunks = None, chunks + 1
    except FileFailure as failure:
        if writer is not None:
            writer.abort()
        objects.delete_prefix(outputs.bucket, prefix)
        progress.fail(failure)
        return report.failed(progress, columns_source)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    plan = {"job_id": job_id(event), "event": event_to_dict(event), "outputs": asdict(outputs),
            "layout": layout.to_dict(), "text_columns": list(text_columns), "columns_source": columns_source,
            "size": report.size, "chunks": chunks, "rows_in": progress.rows_in,
            "started_at": report.started.isoformat()}
    objects.put(outputs.bucket, f"{prefix}plan.json", json.dumps(plan, ensure_ascii=False).encode("utf-8"),
                content_type="application/json")
    task = {TASK_FIELD: CHUNK_TASK, "bucket": outputs.bucket, "prefix": prefix}
    deps.tasks.send([{**task, "chunk": index} for index in range(1, chunks + 1)] if chunks
                    else [{**task, TASK_FIELD: JOIN_TASK}])
    return JobOutcome(JobStatus.SPLIT, event.bucket, event.key, outputs=outputs, chunks=chunks)


class _Job:
    """A fanned-out job as its plan describes it."""

    def __init__(self, objects: S3Objects, bucket: str, prefix: str, plan: dict[str, Any]) -> None:
        self.objects, self.bucket, self.prefix, self.plan = objects, bucket, prefix, plan
        self.event = ObjectCreated(**plan["event"])
        self.outputs = OutputKeys(**plan["outputs"])
        self.layout = Layout.from_dict(plan["layout"])
        self.chunks = int(plan["chunks"])

    def summary_keys(self) -> list[str]:
        return [_part_key(self.prefix, index, "summary.json") for index in range(1, self.chunks + 1)]

    def all_chunks_done(self) -> bool:
        done = set(self.objects.list_keys(self.bucket, f"{self.prefix}parts/"))
        return all(key in done for key in self.summary_keys())


def _load_job(objects: S3Objects, task: dict[str, Any]) -> _Job | None:
    bucket, prefix = str(task["bucket"]), str(task["prefix"])
    raw = objects.read_small(bucket, f"{prefix}plan.json", max_bytes=4 * 1024 * 1024)
    return None if raw is None else _Job(objects, bucket, prefix, json.loads(raw))


def run_task(task: dict[str, Any], deps: JobDependencies) -> JobOutcome:
    """A chunk or join task from the queue."""
    job = _load_job(deps.objects, task)
    if job is None:  # joined and cleaned up already (this is a late duplicate)
        return JobOutcome(JobStatus.STALE, str(task.get("bucket")), str(task.get("prefix")), reason="no plan")
    if is_duplicate(deps.objects, job.outputs, job.event):
        deps.objects.delete_prefix(job.bucket, job.prefix)
        return JobOutcome(JobStatus.DUPLICATE, job.event.bucket, job.event.key, outputs=job.outputs)
    if task[TASK_FIELD] == CHUNK_TASK:
        return _run_chunk(job, int(task["chunk"]), deps)
    return _join(job, deps)


def _run_chunk(job: _Job, index: int, deps: JobDependencies) -> JobOutcome:
    objects = deps.objects
    summary_key = _part_key(job.prefix, index, "summary.json")
    if not objects.exists(job.bucket, summary_key):
        classifier = deps.get_classifier()
        summary = JobSummary(format=job.layout.format.value, gzip=job.layout.gzip,
                             text_columns=job.plan["text_columns"], model_version=classifier.version)
        results = objects.writer(job.bucket, _part_key(job.prefix, index, "results"), content_type=_PART_TYPE)
        errors = objects.writer(job.bucket, _part_key(job.prefix, index, "errors"), content_type=_PART_TYPE)
        review = deps.settings.review
        cap = chunk_review_cap(review.review_max_per_file, chunks=job.chunks, index=index) if deps.review else 0
        doubtful = DoubtfulRows(cap=cap, bucket=job.event.bucket, key=job.event.key,
                                model_version=classifier.version)
        with aborted_on_error(results, errors):
            with objects.open_read(job.bucket, _chunk_key(job.prefix, index)) as source:
                writers = OutputWriters(job.layout, results, errors, part=True)
                classify_items(decode_items(source), writers, classifier, summary=summary,
                               batch_size=deps.batch_rows, on_result=doubtful.add)
                writers.close()
            results.complete()
            errors.complete()
        # As the whole-file job does once the results are safe; the join sums the parts' counts.
        queued = queue_for_review(deps.review, doubtful.candidates(), settings=review, cap=cap)
        summary.review_queued, summary.review_queue_failed = queued.written, queued.failed
        objects.put(job.bucket, summary_key, json.dumps(summary.to_dict()).encode("utf-8"),
                    content_type="application/json")
    if job.all_chunks_done() and deps.tasks is not None:
        # Several chunk tasks may see this at once: the join is idempotent, so each may send one.
        deps.tasks.send([{TASK_FIELD: JOIN_TASK, "bucket": job.bucket, "prefix": job.prefix}])
    return JobOutcome(JobStatus.CHUNK_DONE, job.event.bucket, job.event.key, outputs=job.outputs, chunks=index)


def chunk_review_cap(per_file: int, *, chunks: int, index: int) -> int:
    """Chunk `index`'s share (1-based) of the file's review cap: the shares sum to the cap exactly."""
    return per_file // chunks + (1 if index <= per_file % chunks else 0)


def _parts(objects: S3Objects, bucket: str, keys: list[str]) -> Iterator[BinaryIO]:
    for key in keys:
        with objects.open_read(bucket, key) as stream:
            yield stream


def _join(job: _Job, deps: JobDependencies) -> JobOutcome:
    objects, event, outputs = deps.objects, job.event, job.outputs
    if not job.all_chunks_done():
        raise RuntimeError(f"join of {job.prefix} before all {job.chunks} chunks are done")  # retry later
    if not is_current(event, objects.head(event.bucket, event.key)):
        objects.delete_prefix(job.bucket, job.prefix)
        return JobOutcome(JobStatus.SUPERSEDED, event.bucket, event.key, outputs=outputs)
    spec, _ = file_spec_or_failure(event.key)
    summaries = [JobSummary.counts_from_dict(json.loads(objects.read_small(job.bucket, key) or b"{}"))
                 for key in job.summary_keys()]
    results = objects.writer(outputs.bucket, outputs.results, content_type=spec.content_type)
    errors = objects.writer(outputs.bucket, outputs.errors, content_type=spec.content_type)
    indexes = range(1, job.chunks + 1)
    with aborted_on_error(results, errors):
        join_parts(job.layout, _parts(objects, job.bucket, [_part_key(job.prefix, i, "results") for i in indexes]),
                   results, errors=False)
        join_parts(job.layout, _parts(objects, job.bucket, [_part_key(job.prefix, i, "errors") for i in indexes]),
                   errors, errors=True)
        results.complete()
        errors.complete()
    versions = sorted({s.model_version for s in summaries if s.model_version})
    summary = JobSummary(format=spec.format.value, gzip=spec.gzip, text_columns=job.plan["text_columns"],
                         model_version=",".join(versions) or None)
    summary.describe(job.layout)
    for part in summaries:
        summary.add_counts(part)
    report = Report(objects, event, spec, outputs, size=int(job.plan["size"]),
                    started=datetime.fromisoformat(job.plan["started_at"]))
    report.manifest(summary, job.plan["columns_source"], results_key=outputs.results,
                    extra={"chunks": job.chunks})
    objects.delete_prefix(job.bucket, job.prefix)
    return JobOutcome(JobStatus.SUCCEEDED, event.bucket, event.key, summary=summary, outputs=outputs, chunks=job.chunks)
