"""The chunk fan-out on moto: split -> chunk tasks on the real queue -> join, same bytes as one invocation."""

from __future__ import annotations

import gzip
import io
import json

import pytest

from categorizer.contract import FanOut
from categorizer.files.formats import detect_format
from categorizer.files.pipeline import classify_stream
from tests.batch.conftest import RESULTS_BUCKET, emf_metrics

TEXTS = ["my card has not arrived yet", "what is the exchange rate for euros", "someone stole my card"]


@pytest.fixture
def fanout(aws):
    aws.use(fanout=FanOut(fanout_bytes=2000, chunk_rows=200))  # 200 rows: rounded up to 256, the batch size
    return aws


def _drain(aws, context, limit: int = 20) -> list[dict]:
    """Deliver whatever the queue holds until it is empty, like the event source mapping would."""
    bodies = []
    for _ in range(limit):
        messages = aws.receive()
        if not messages:
            return bodies
        bodies += [json.loads(m["Body"]) for m in messages]
        aws.deliver(messages, context)
    raise AssertionError("the queue never emptied")


def _single_run(name: str, data: bytes, classifier) -> tuple[bytes, bytes]:
    results, errors = io.BytesIO(), io.BytesIO()
    summary = classify_stream(io.BytesIO(data), results=results, errors=errors, classifier=classifier,
                              spec=detect_format(name))
    assert summary.succeeded
    return results.getvalue(), errors.getvalue()


def _csv_rows(n: int) -> bytes:
    lines = ["id,text"] + [f"{i},{TEXTS[i % 3]} {i}" if i % 97 else f"{i}," for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


FILES = {
    "csv": ("ingest/big/file.csv", _csv_rows(600)),
    "json": ("ingest/big/file.json", json.dumps([{"id": i, "text": TEXTS[i % 3] if i % 50 else None}
                                                  for i in range(600)]).encode()),
    "jsonl.gz": ("ingest/big/file.jsonl.gz", gzip.compress(b"".join(
        json.dumps({"id": i, "text": TEXTS[i % 3] + f" {i}"}).encode() + b"\n" for i in range(600)) + b"{bad\n")),
}


@pytest.mark.parametrize("case", FILES.values(), ids=FILES.keys())
def test_fanned_out_file_is_byte_identical_to_a_single_run(fanout, lambda_context, classifier, case, capsys):
    key, data = case
    fanout.upload(key, data)
    bodies = _drain(fanout, lambda_context)
    tasks = [body.get("categorizer_task") for body in bodies]
    assert tasks.count("chunk") == 3 and tasks.count("join") >= 1  # 601 records / 256 per chunk
    name = key.rsplit("/", 1)[1]
    stem, extension = name.split(".", 1)
    expected_results, expected_errors = _single_run(name, data, classifier)
    assert fanout.get(f"results/big/{name}") == expected_results
    assert fanout.get(f"results/big/{stem}.errors.{extension}") == expected_errors
    manifest = fanout.manifest(f"results/big/{stem}.manifest.json")
    assert manifest["status"] == "succeeded" and manifest["chunks"] == 3
    assert manifest["rows_in"] == manifest["rows_classified"] + manifest["rows_rejected"] > 600 - 20
    assert [k for k in fanout.result_keys() if "/_work/" in k] == []  # the work area is cleaned up
    metrics = emf_metrics(capsys.readouterr().out)
    assert (metrics["FilesSplit"], metrics["ChunksProcessed"], metrics["FilesProcessed"]) == (1, 3, 1)
    assert metrics["RowsClassified"] == manifest["rows_classified"]


def test_redelivered_chunk_and_join_tasks_change_nothing(fanout, lambda_context):
    from categorizer.handlers import batch

    fanout.upload("ingest/big/dup.csv", _csv_rows(600))
    fanout.deliver(fanout.receive(expected=1), lambda_context)  # the split
    chunk_messages = fanout.receive(expected=3)
    for message in chunk_messages:  # every chunk task arrives twice
        batch.handler(fanout.lambda_event([message]), lambda_context)
    fanout.deliver(chunk_messages, lambda_context)
    joins = fanout.receive()
    assert joins and all(json.loads(m["Body"])["categorizer_task"] == "join" for m in joins)
    assert fanout.deliver(joins, lambda_context) == {"batchItemFailures": []}
    batch.handler(fanout.lambda_event(joins[:1]), lambda_context)  # a late join: the plan is gone
    for key in ("results/big/dup.csv", "results/big/dup.errors.csv", "results/big/dup.manifest.json"):
        assert fanout.versions(key) == 1, key


class _CrashOnce:
    def __init__(self, inner) -> None:
        self._inner, self.version, self.calls = inner, inner.version, 0

    def classify(self, texts, *, top_k=3):
        self.calls += 1
        if self.calls == 2:
            raise MemoryError("simulated crash inside a chunk")
        return self._inner.classify(texts, top_k=top_k)


def test_a_chunk_that_crashes_is_retried_and_the_result_is_unchanged(fanout, lambda_context, classifier,
                                                                      monkeypatch):
    data = _csv_rows(600)
    crashing = _CrashOnce(classifier)
    fanout.use(get_classifier=lambda: crashing)
    fanout.upload("ingest/big/crash.csv", data)
    _drain(fanout, lambda_context)
    expected_results, expected_errors = _single_run("crash.csv", data, classifier)
    assert fanout.get("results/big/crash.csv") == expected_results
    assert fanout.get("results/big/crash.errors.csv") == expected_errors
    assert crashing.calls > 2
    assert fanout.s3.list_multipart_uploads(Bucket=RESULTS_BUCKET).get("Uploads", []) == []


def test_a_poison_file_fails_at_the_split_with_no_tasks(fanout, lambda_context):
    fanout.upload("ingest/big/poison.csv", b"id,body\n" + b"1,no text column\n" * 300)
    bodies = _drain(fanout, lambda_context)
    assert [b.get("categorizer_task") for b in bodies] == [None]  # only the S3 notification
    manifest = fanout.manifest("results/big/poison.manifest.json")
    assert manifest["failure"]["reason"] == "missing_text_column"
    assert [k for k in fanout.result_keys() if "/_work/" in k] == []


def test_small_files_still_run_in_one_invocation(fanout, lambda_context):
    fanout.upload("ingest/small.csv", b"text\nmy card has not arrived\n")
    bodies = _drain(fanout, lambda_context)
    assert len(bodies) == 1
    assert "chunks" not in fanout.manifest("results/small.manifest.json")
