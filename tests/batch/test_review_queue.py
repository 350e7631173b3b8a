"""Rows of a dropped file that need review reach the review queue: bounded per file, every label represented,
and a queue that fails never fails the file."""

from __future__ import annotations

import csv
import dataclasses
import io

import boto3

from categorizer.adapters.review_table import ReviewTable, SourceKind, item_id_for
from categorizer.contract import ReviewQueue
from categorizer.contract.names import REVIEW_TABLE, ReviewOrder
from categorizer.handlers import batch
from tests.batch.conftest import INGEST_BUCKET

TEXTS = ["card", "rate", "hello there", "my thing", "stolen", "When will my new card arrive?",
         "What is the exchange rate for euros?", "lost", "transfer", "top up"]


def _csv(texts: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text"])
    writer.writerows([t] for t in texts)
    return out.getvalue().encode()


def _use_queue(aws, *, table: str, cap: int = 200) -> ReviewTable | None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    if table != "missing":
        dynamodb.create_table(**REVIEW_TABLE.create_table_kwargs(table))
    settings = dataclasses.replace(aws.settings, review=ReviewQueue(review_table=table, review_max_per_file=cap))
    services = aws.use(settings=settings)
    review = ReviewTable(table, dynamodb)
    batch.services.override(dataclasses.replace(services, review=review))
    return review


def test_rows_that_need_review_are_queued_with_their_file_and_row(aws, lambda_context):
    review = _use_queue(aws, table="review-a")

    aws.upload_and_deliver("ingest/team/doubts.csv", _csv(TEXTS), lambda_context)

    manifest = aws.manifest("results/team/doubts.manifest.json")
    doubtful = manifest["needs_review"]
    items, _ = review.list_open(order=ReviewOrder.RECENT, limit=100)
    assert doubtful > 0 and manifest["review_queue"] == {"queued": doubtful, "failed": 0}
    assert len(items) == doubtful
    item = items[0]
    assert item.source.kind is SourceKind.FILE and item.source.bucket == INGEST_BUCKET
    assert item.source.key == "ingest/team/doubts.csv" and TEXTS[item.source.row - 1] == item.text
    assert item.item_id == item_id_for(item.text) and item.model_version == manifest["model_version"]


def test_the_per_file_cap_keeps_every_predicted_label(aws, lambda_context):
    review = _use_queue(aws, table="review-b", cap=3)

    aws.upload_and_deliver("ingest/team/many.csv", _csv(TEXTS * 3 + [f"{t} please" for t in TEXTS]),
                           lambda_context)

    manifest = aws.manifest("results/team/many.manifest.json")
    results = list(csv.DictReader(io.StringIO(aws.get("results/team/many.csv").decode())))
    doubtful_labels = {row["predicted_label"] for row in results if row["needs_review"] == "true"}
    items, _ = review.list_open(order=ReviewOrder.UNCERTAIN, limit=100)
    assert manifest["review_queue"]["queued"] == len(items) == 3
    # Round-robin over labels: as many different labels as the cap allows, not the 3 least confident rows.
    assert len({item.label for item in items}) == min(3, len(doubtful_labels)) >= 2


def test_a_queue_outage_is_counted_and_the_file_still_succeeds(aws, lambda_context, capsys):
    _use_queue(aws, table="missing")

    response = aws.upload_and_deliver("ingest/team/outage.csv", _csv(TEXTS), lambda_context)

    assert response == {"batchItemFailures": []}
    manifest = aws.manifest("results/team/outage.manifest.json")
    assert manifest["status"] == "succeeded" and manifest["rows_classified"] == len(TEXTS)
    assert manifest["review_queue"]["queued"] == 0 and manifest["review_queue"]["failed"] > 0
    assert "ReviewQueueWriteFailures" in capsys.readouterr().out


def test_a_fanned_out_file_queues_its_rows_within_the_same_per_file_cap(aws, lambda_context):
    from categorizer.batch.fanout import chunk_review_cap
    from categorizer.contract import FanOut
    from tests.batch.test_fanout import _drain

    aws.use(fanout=FanOut(fanout_bytes=2000, chunk_rows=200))  # 600 rows: three chunk tasks of 256
    review = _use_queue(aws, table="review-fanout", cap=5)
    texts = [f"{TEXTS[i % len(TEXTS)]} {i}" for i in range(600)]

    aws.upload("ingest/big/doubts.csv", _csv(texts))
    bodies = _drain(aws, lambda_context)

    assert [b.get("categorizer_task") for b in bodies].count("chunk") == 3
    manifest = aws.manifest("results/big/doubts.manifest.json")
    items, _ = review.list_open(order=ReviewOrder.RECENT, limit=100)
    assert manifest["chunks"] == 3 and manifest["needs_review"] > 5
    assert manifest["review_queue"] == {"queued": 5, "failed": 0} and len(items) == 5
    assert [chunk_review_cap(5, chunks=3, index=i) for i in (1, 2, 3)] == [2, 2, 1]
    rows = sorted(item.source.row for item in items)
    assert rows[-1] > 256  # later chunks queue their own rows, with the file's row numbers
    assert all(texts[item.source.row - 1] == item.text and item.source.key == "ingest/big/doubts.csv"
               for item in items)
