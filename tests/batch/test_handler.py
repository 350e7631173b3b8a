"""The batch function end to end on moto: real S3 -> SQS notifications, the handler, S3 outputs."""

from __future__ import annotations

import csv
import gzip
import io
import json

import pytest
from botocore.exceptions import EndpointConnectionError

from categorizer import model_store
from categorizer.adapters.s3_objects import get_s3_objects
from tests.batch.conftest import INGEST_BUCKET, MAX_RECEIVES, RESULTS_BUCKET, emf_metrics

TEXTS = ["my card has not arrived yet", "what is the exchange rate for euros", "someone stole my card"]


def _csv(rows: list[list[str]], delimiter: str = ",") -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def _rows(data: bytes, file_format: str, delimiter: str = ",") -> list:
    text = data.decode("utf-8-sig")
    if file_format == "csv":
        return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))
    if file_format == "json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines()]


def test_s3_test_event_is_ignored(aws, lambda_context):
    (message,) = aws.setup_messages
    assert json.loads(message["Body"])["Event"] == "s3:TestEvent"
    assert aws.deliver([message], lambda_context) == {"batchItemFailures": []}
    assert aws.result_keys() == []
    assert aws.receive() == []  # deleted, not waiting to be retried


FORMATS = {
    "csv": ("ingest/a.csv", _csv([["id", "text"], *[[str(i), t] for i, t in enumerate(TEXTS)]]), "csv", ","),
    "json": ("ingest/a.json", json.dumps([{"id": i, "text": t} for i, t in enumerate(TEXTS)]).encode(), "json", ","),
    "jsonl": ("ingest/a.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in TEXTS).encode(), "jsonl", ","),
    "gzip": ("ingest/a.csv.gz", gzip.compress(_csv([["text"], *[[t] for t in TEXTS]])), "csv", ","),
    "gzip jsonl": ("ingest/a.jsonl.gz", gzip.compress(b"".join(json.dumps({"text": t}).encode() + b"\n"
                                                                for t in TEXTS)), "jsonl", ","),
    "bom": ("ingest/a.csv", b"\xef\xbb\xbf" + _csv([["text"], *[[t] for t in TEXTS]]), "csv", ","),
    "semicolon": ("ingest/a.csv", _csv([["id", "text"], *[[str(i), t] for i, t in enumerate(TEXTS)]], ";"), "csv",
                  ";"),
    "quoted newlines": ("ingest/a.csv", _csv([["text"], *[[t.replace(" ", "\n", 1)] for t in TEXTS]]), "csv", ","),
}


@pytest.mark.parametrize("case", FORMATS.values(), ids=FORMATS.keys())
def test_formats_end_to_end(aws, lambda_context, case, capsys):
    key, body, file_format, delimiter = case
    etag = aws.upload(key, body)
    (message,) = aws.receive(expected=1)
    assert aws.deliver([message], lambda_context) == {"batchItemFailures": []}
    name = key.removeprefix("ingest/")
    stem = name.split(".")[0]
    extension = name.split(".", 1)[1]
    results = aws.get(f"results/{name}")
    if key.endswith(".gz"):
        assert results[:2] == b"\x1f\x8b"
        results = gzip.decompress(results)
    rows = _rows(results, file_format, delimiter)
    assert len(rows) == 3 and all(row["predicted_label"] and row["model_version"] for row in rows)
    assert aws.get(f"results/{stem}.errors.{extension}") is not None
    manifest = aws.manifest(f"results/{stem}.manifest.json")
    assert manifest["status"] == "succeeded"
    assert manifest["input"] == {"bucket": INGEST_BUCKET, "key": key, "etag": etag, "version_id": None,
                                 "size": len(body), "sequencer": None}
    assert (manifest["rows_in"], manifest["rows_classified"], manifest["rows_rejected"]) == (3, 3, 0)
    assert sum(manifest["counts"].values()) == 3
    assert manifest["started_at"] <= manifest["finished_at"] and manifest["duration_seconds"] >= 0
    metrics = emf_metrics(capsys.readouterr().out)
    assert (metrics["FilesProcessed"], metrics["RowsClassified"], metrics["FilesFailed"]) == (1, 3, 0)


def test_metadata_selects_the_text_columns(aws, lambda_context):
    body = _csv([["title", "description", "text"], ["Card", "has not arrived", ""]])
    aws.upload_and_deliver("ingest/m.csv", body, lambda_context, metadata={"text-columns": "title, description"})
    manifest = aws.manifest("results/m.manifest.json")
    assert (manifest["rows_classified"], manifest["text_columns"], manifest["text_columns_source"]) == (
        1, ["title", "description"], "metadata")


def test_prefix_config_selects_the_text_columns(aws, lambda_context):
    config = json.dumps({"text_columns": ["title", "body"]}).encode()
    assert aws.upload_and_deliver("ingest/team/_categorizer.json", config, lambda_context) == {"batchItemFailures": []}
    assert aws.result_keys() == []  # the config object is not a file to classify
    body = _csv([["title", "body"], ["Card", "not arrived"], ["", "exchange rate"]])
    aws.upload_and_deliver("ingest/team/2026/q3.csv", body, lambda_context)
    manifest = aws.manifest("results/team/2026/q3.manifest.json")
    assert manifest["text_columns_source"] == "ingest/team/_categorizer.json"
    assert manifest["rows_classified"] == 2
    # Object metadata wins over the prefix config.
    aws.upload_and_deliver("ingest/team/other.csv", _csv([["text"], [TEXTS[0]]]), lambda_context,
                           metadata={"text-columns": "text"})
    assert aws.manifest("results/team/other.manifest.json")["rows_classified"] == 1


@pytest.mark.parametrize("key", [
    "ingest/team a/Q3 report+final été.csv",
    "ingest/a+b%2Fc (1).csv",
    "ingest/日本語/データ.csv",
])
def test_keys_with_spaces_plus_and_unicode(aws, lambda_context, key):
    aws.upload(key, _csv([["text"], [TEXTS[0]]]))
    (message,) = aws.receive(expected=1)
    raw_key = json.loads(message["Body"])["Records"][0]["s3"]["object"]["key"]
    assert raw_key != key  # S3 sends it URL-encoded
    aws.deliver([message], lambda_context)
    relative = key.removeprefix("ingest/")
    assert aws.get(f"results/{relative}") is not None
    manifest = aws.manifest(f"results/{relative.removesuffix('.csv')}.manifest.json")
    assert manifest["input"]["key"] == key and manifest["status"] == "succeeded"


def test_duplicate_delivery_gives_one_set_of_outputs(aws, lambda_context, capsys):
    aws.upload("ingest/dup.csv", _csv([["text"], *[[t] for t in TEXTS]]))
    (message,) = aws.receive(expected=1)
    for _ in range(5):  # at-least-once: the same notification arrives five times
        assert aws.lambda_event([message])
        from categorizer.handlers import batch

        assert batch.handler(aws.lambda_event([message]), lambda_context) == {"batchItemFailures": []}
    for key in ("results/dup.csv", "results/dup.errors.csv", "results/dup.manifest.json"):
        assert aws.versions(key) == 1, key
    metrics = emf_metrics(capsys.readouterr().out)
    assert (metrics["FilesProcessed"], metrics["DuplicateDeliveries"], metrics["RowsClassified"]) == (1, 4, 3)


class _CrashingClassifier:
    """The real classifier, except that the process 'dies' on the n-th batch (after k rows were written)."""

    def __init__(self, inner, crash_on_call: int) -> None:
        self._inner = inner
        self.version = inner.version
        self.calls = 0
        self.crash_on_call = crash_on_call

    def classify(self, texts, *, top_k=3):
        self.calls += 1
        if self.calls == self.crash_on_call:
            raise MemoryError("simulated crash in the middle of the file")
        return self._inner.classify(texts, top_k=top_k)


def test_crash_after_k_rows_then_retry_gives_identical_output(aws, lambda_context, classifier, monkeypatch,
                                                              capsys):
    rows = [["id", "text"], *[[str(i), f"{TEXTS[i % 3]} {i}" if i % 50 else ""] for i in range(600)]]
    body = _csv(rows)
    crashing = _CrashingClassifier(classifier, crash_on_call=2)
    monkeypatch.setattr(model_store, "get_classifier", lambda: crashing)
    aws.upload("ingest/crash.csv", body)
    (message,) = aws.receive(expected=1)
    response = aws.deliver([message], lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    assert emf_metrics(capsys.readouterr().out)["FileTransientFailures"] == 1
    # 256 rows were classified and written before the crash, yet nothing is visible:
    assert aws.result_keys() == []
    assert aws.s3.list_multipart_uploads(Bucket=RESULTS_BUCKET).get("Uploads", []) == []

    monkeypatch.setattr(model_store, "get_classifier", lambda: classifier)
    (retry,) = aws.receive(expected=1)  # the same message, back from the queue
    assert retry["MessageId"] == message["MessageId"]
    assert aws.deliver([retry], lambda_context) == {"batchItemFailures": []}
    # The same content uploaded elsewhere and processed without a crash gives the same bytes.
    aws.upload_and_deliver("ingest/clean/crash.csv", body, lambda_context)
    for name in ("crash.csv", "crash.errors.csv"):
        assert aws.get(f"results/{name}") == aws.get(f"results/clean/{name}")
    manifest = aws.manifest("results/crash.manifest.json")
    assert (manifest["rows_in"], manifest["rows_classified"], manifest["rows_rejected"]) == (600, 588, 12)


def test_poison_file_is_reported_once_and_never_retried(aws, lambda_context, capsys):
    aws.upload("ingest/poison.csv", _csv([["id", "body"], ["1", "no text column here"]]))
    (message,) = aws.receive(expected=1)
    assert aws.deliver([message], lambda_context) == {"batchItemFailures": []}
    manifest = aws.manifest("results/poison.manifest.json")
    assert manifest["status"] == "failed"
    assert manifest["failure"]["reason"] == "missing_text_column" and "'body'" in manifest["failure"]["message"]
    assert manifest["outputs"]["results"] is None and aws.get("results/poison.csv") is None
    (report,) = _rows(aws.get("results/poison.errors.csv"), "csv")
    assert (report["row"], report["reason"]) == ("", "missing_text_column")
    assert aws.receive() == []
    assert aws.sqs.receive_message(QueueUrl=aws.dlq_url).get("Messages", []) == []
    # A redelivery of the same notification is a duplicate: no second report.
    from categorizer.handlers import batch

    batch.handler(aws.lambda_event([message]), lambda_context)
    assert aws.versions("results/poison.manifest.json") == 1
    metrics = emf_metrics(capsys.readouterr().out)
    assert (metrics["FilesFailed"], metrics["DuplicateDeliveries"], metrics["FileTransientFailures"]) == (1, 1, 0)


@pytest.mark.parametrize(("key", "body", "reason", "errors_key"), [
    ("ingest/bomb.csv.gz", gzip.compress(b"text\n" + b"a" * (60 * 1024 * 1024), 9), "decompressed_too_large",
     "results/bomb.errors.csv.gz"),
    ("ingest/cut.csv.gz", gzip.compress(b"text\n" + b"my card\n" * 100)[:-12], "truncated_gzip",
     "results/cut.errors.csv.gz"),
    ("ingest/sheet.ods", b"PK\x03\x04 not a csv", "unknown_format", "results/sheet.ods.errors.jsonl"),
    ("ingest/sheet.xlsx", b"PK\x03\x04 cut short", "corrupt_workbook", "results/sheet.errors.csv"),
])
def test_whole_file_failures_get_a_report_and_a_failed_manifest(aws, lambda_context, key, body, reason, errors_key):
    assert aws.upload_and_deliver(key, body, lambda_context) == {"batchItemFailures": []}
    manifest_key = errors_key.replace(".errors.", ".manifest.").rsplit(".manifest.", 1)[0] + ".manifest.json"
    manifest = aws.manifest(manifest_key)
    assert (manifest["status"], manifest["failure"]["reason"]) == ("failed", reason)
    report = aws.get(errors_key)
    if errors_key.endswith(".gz"):
        report = gzip.decompress(report)
    assert reason.encode() in report
    assert aws.receive() == []


def test_size_limit_is_checked_before_reading(aws, lambda_context, monkeypatch):
    from categorizer.settings import get_settings

    monkeypatch.setenv("MAX_FILE_BYTES", "1000")
    get_settings.cache_clear()
    aws.upload_and_deliver("ingest/big.csv", b"text\n" + b"my card\n" * 200, lambda_context)
    manifest = aws.manifest("results/big.manifest.json")
    assert manifest["failure"]["reason"] == "file_too_large" and manifest["rows_in"] == 0
    assert "1,000" in manifest["failure"]["message"]


def test_bad_rows_mixed_in_add_up(aws, lambda_context, capsys):
    body = (b"id,text\n1,my card has not arrived\n2,\n3,\"stray\" quote\n4,caf\xe9 latin-1\n"
            b"5,what is the exchange rate\n6,a,b,c\n7,someone stole my card\n")
    aws.upload_and_deliver("ingest/mixed.csv", body, lambda_context)
    manifest = aws.manifest("results/mixed.manifest.json")
    assert manifest["rows_in"] == manifest["rows_classified"] + manifest["rows_rejected"] == 7
    # The Latin-1 row is not lost either: the file's encoding is detected (Windows-1252), so it is classified.
    assert manifest["encoding"] == "cp1252"
    assert manifest["rows_classified"] == 4 == sum(manifest["counts"].values())
    assert manifest["rejected_by_reason"] == {"empty_text": 1, "malformed_csv": 1, "too_many_fields": 1}
    errors = _rows(aws.get("results/mixed.errors.csv"), "csv")
    assert [e["row"] for e in errors] == ["2", "3", "6"]
    assert [r["id"] for r in _rows(aws.get("results/mixed.csv"), "csv")] == ["1", "4", "5", "7"]
    metrics = emf_metrics(capsys.readouterr().out)
    assert (metrics["RowsClassified"], metrics["RowsRejected"]) == (4, 3)


def test_formula_injection_is_neutralised_in_the_results(aws, lambda_context):
    body = _csv([["text", "note"], ['=HYPERLINK("http://evil","card")', "-12.5"], ["@SUM(A1) card", "+cmd"]])
    aws.upload_and_deliver("ingest/formula.csv", body, lambda_context)
    rows = _rows(aws.get("results/formula.csv"), "csv")
    assert [(r["text"], r["note"]) for r in rows] == [("'=HYPERLINK(\"http://evil\",\"card\")", "-12.5"),
                                                       ("'@SUM(A1) card", "'+cmd")]


def test_column_clash_gets_our_suffix(aws, lambda_context):
    aws.upload_and_deliver("ingest/clash.csv", _csv([["text", "predicted_label"], [TEXTS[0], "mine"]]),
                           lambda_context)
    (row,) = _rows(aws.get("results/clash.csv"), "csv")
    assert row["predicted_label"] == "mine" and row["predicted_label_categorizer"] == "card_arrival"
    manifest = aws.manifest("results/clash.manifest.json")
    assert manifest["output_columns"]["predicted_label"] == "predicted_label_categorizer"


def test_transient_write_failure_returns_to_the_queue_then_the_dlq(aws, lambda_context, capsys):
    def unreachable(**kwargs):
        raise EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")

    client = get_s3_objects().client
    client.meta.events.register("before-call.s3.PutObject", unreachable)
    aws.upload("ingest/flaky.csv", _csv([["text"], [TEXTS[0]]]))
    message_id = None
    for _ in range(MAX_RECEIVES):
        (message,) = aws.receive(expected=1)
        message_id = message_id or message["MessageId"]
        assert aws.deliver([message], lambda_context) == {"batchItemFailures": [{"itemIdentifier": message_id}]}
        assert aws.result_keys() == []
    assert aws.receive() == []  # the next receive moved it to the DLQ
    (dead,) = aws.sqs.receive_message(QueueUrl=aws.dlq_url)["Messages"]
    assert dead["MessageId"] == message_id
    assert emf_metrics(capsys.readouterr().out)["FileTransientFailures"] == MAX_RECEIVES
    # Once S3 is back, redriving the dead letter produces the outputs.
    client.meta.events.unregister("before-call.s3.PutObject", unreachable)
    from categorizer.handlers import batch

    assert batch.handler(aws.lambda_event([dead]), lambda_context) == {"batchItemFailures": []}
    assert aws.manifest("results/flaky.manifest.json")["status"] == "succeeded"


def test_a_new_upload_of_the_same_key_is_a_new_job(aws, lambda_context):
    aws.upload("ingest/same.csv", _csv([["text"], [TEXTS[0]]]))
    (first,) = aws.receive(expected=1)
    aws.deliver([first], lambda_context)
    etag = aws.upload("ingest/same.csv", _csv([["text"], [TEXTS[1]], [TEXTS[2]]]))
    (second,) = aws.receive(expected=1)
    aws.deliver([second], lambda_context)
    manifest = aws.manifest("results/same.manifest.json")
    assert (manifest["input"]["etag"], manifest["rows_classified"]) == (etag, 2)
    # A late redelivery of the first upload's event must not overwrite the newer results.
    from categorizer.handlers import batch

    batch.handler(aws.lambda_event([first]), lambda_context)
    assert aws.manifest("results/same.manifest.json")["input"]["etag"] == etag
    assert aws.versions("results/same.csv") == 2


@pytest.mark.parametrize("key", ["ingest/../escape.csv", "ingest/a/../../escape.csv", "ingest/./x.csv"])
def test_keys_that_would_escape_the_results_prefix_are_refused(aws, lambda_context, key, capsys):
    assert aws.upload_and_deliver(key, _csv([["text"], [TEXTS[0]]]), lambda_context) == {"batchItemFailures": []}
    assert aws.result_keys() == []
    assert emf_metrics(capsys.readouterr().out)["FilesFailed"] == 1


def test_folder_markers_are_ignored(aws, lambda_context, capsys):
    assert aws.upload_and_deliver("ingest/new folder/", b"", lambda_context) == {"batchItemFailures": []}
    assert aws.result_keys() == []
    assert emf_metrics(capsys.readouterr().out)["FilesFailed"] == 0


def test_a_message_that_is_not_a_notification_is_reported_not_looped(aws, lambda_context, capsys):
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody="not json at all")
    (message,) = aws.receive(expected=1)
    assert aws.deliver([message], lambda_context) == {"batchItemFailures": []}
    assert emf_metrics(capsys.readouterr().out)["InvalidNotifications"] == 1


def test_time_budget_exhaustion_fails_the_file_with_a_report(aws, lambda_context, monkeypatch):
    monkeypatch.setattr(type(lambda_context), "get_remaining_time_in_millis", staticmethod(lambda: 10_000))
    body = _csv([["text"], *[[f"{TEXTS[i % 3]} {i}"] for i in range(300)]])
    assert aws.upload_and_deliver("ingest/slow.csv", body, lambda_context) == {"batchItemFailures": []}
    manifest = aws.manifest("results/slow.manifest.json")
    assert manifest["failure"]["reason"] == "time_budget_exceeded" and manifest["rows_in"] == 256
    assert aws.get("results/slow.csv") is None


def test_model_loaded_from_model_dir_through_the_model_store(aws, lambda_context, tiny_bundle, monkeypatch):
    monkeypatch.undo()  # back to the real model_store.get_classifier ...
    monkeypatch.setenv("MODEL_DIR", str(tiny_bundle))  # ... with MODEL_DIR, as the local stack runs it
    for name, value in {"INGEST_PREFIX": "ingest/", "RESULTS_PREFIX": "results/", "RESULTS_BUCKET": RESULTS_BUCKET,
                        "ONNX_THREADS": "1"}.items():
        monkeypatch.setenv(name, value)
    from categorizer.settings import get_settings

    get_settings.cache_clear()
    monkeypatch.setattr(model_store, "_store", None)
    aws.upload_and_deliver("ingest/store.csv", _csv([["text"], [TEXTS[2]]]), lambda_context)
    (row,) = _rows(aws.get("results/store.csv"), "csv")
    assert row["predicted_label"] == "lost_or_stolen_card"
