"""The review queue's health signal: the scheduled review-queue-metrics function on a real (moto) review table
created from the contract's TableShape, driven by the real EventBridge "Scheduled Event", asserted on the EMF
it prints. Time is an injected clock; items are queued with explicit timestamps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from categorizer.adapters.review_table import QueuedPrediction, ReviewSource, ReviewTable, SourceKind
from categorizer.contract import ReviewQueueMetricsSettings, SettingsError
from categorizer.contract.names import REVIEW_TABLE
from categorizer.handlers import review_queue_metrics
from categorizer.review.health import HealthDependencies, HealthStatus, measure_queue
from tests.support.events import load_event
from tests.support.observability import emf_blobs, emitted_metrics

REGION = "us-east-1"
NOW = datetime(2026, 11, 29, 2, 5, tzinfo=UTC).timestamp()  # the tick of events/review/scheduled_event.json
HOUR = 3600.0
DEPTH, AGE, READ_FAILURES = "ReviewQueueDepth", "ReviewQueueOldestItemAge", "ReviewQueueReadFailures"


def _stamp(epoch: float) -> str:
    """The `queued_at` format the queue writes (review/queueing.py)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Queue:
    table: ReviewTable

    def add(self, text: str, *, hours_ago: float) -> str:
        prediction = QueuedPrediction(text=text, source=ReviewSource(SourceKind.API, caller="someone"),
                                      model_version="v1", label="card_arrival", confidence=0.3,
                                      top_k=(("card_arrival", 0.3), ("exchange_rate", 0.2)))
        when = NOW - hours_ago * HOUR
        self.table.queue(prediction, now=_stamp(when), expires_at=int(when) + 30 * 86_400)
        return prediction.item_id

    def decide(self, item_id: str) -> None:
        now = int(NOW - 60)
        self.table.claim(item_id, reviewer="rita", now=now, until=now + 300)
        self.table.close(item_id, reviewer="rita", decision="accept", label="card_arrival", feedback_id="f-1",
                         now=_stamp(now), now_epoch=now)

    def skip(self, item_id: str) -> None:
        now = int(NOW - 60)
        self.table.claim(item_id, reviewer="rita", now=now, until=now + 300)
        self.table.release(item_id, reviewer="rita", now_epoch=now)


@pytest.fixture
def queue() -> Iterator[Queue]:
    """A fresh review table, and the function reading it with the test's clock."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(**REVIEW_TABLE.create_table_kwargs("review-health"))
        table = ReviewTable("review-health", dynamodb)
        review_queue_metrics.dependencies.override(HealthDependencies(table=table, max_pages=100, clock=lambda: NOW))
        yield Queue(table)
    review_queue_metrics.dependencies.reset()


def _tick(lambda_context) -> dict:
    return review_queue_metrics.handler(load_event("review/scheduled_event.json"), lambda_context)


def test_an_empty_queue_publishes_depth_zero_and_age_zero(queue, lambda_context, capsys):
    result = _tick(lambda_context)

    assert result["status"] == "measured" and result["depth"] == 0 and result["oldest_age_seconds"] == 0
    out = capsys.readouterr().out
    assert emitted_metrics(out) == {DEPTH: [0.0], AGE: [0.0]}
    units = {m["Name"]: m["Unit"] for blob in emf_blobs(out) for d in blob["_aws"]["CloudWatchMetrics"]
             for m in d["Metrics"]}
    assert units == {DEPTH: "Count", AGE: "Seconds"}


def test_only_open_items_count_and_the_oldest_open_one_sets_the_age(queue, lambda_context, capsys):
    decided_oldest = queue.add("decided long ago", hours_ago=200)  # older than every open item, but closed
    queue.decide(decided_oldest)
    queue.decide(queue.add("decided recently", hours_ago=1))
    first = queue.add("first open one", hours_ago=80)
    queue.add("first open one", hours_ago=2)  # seen again later: still waiting since it was first queued
    queue.skip(queue.add("skipped, back in the queue", hours_ago=30))
    queue.add("fresh", hours_ago=0.5)

    result = _tick(lambda_context)

    assert result["depth"] == 3 and result["complete"] is True
    assert result["oldest_item_id"] == first
    assert result["oldest_age_seconds"] == pytest.approx(80 * HOUR, abs=0.01)
    assert emitted_metrics(capsys.readouterr().out) == {DEPTH: [3.0], AGE: [pytest.approx(80 * HOUR, abs=0.01)]}


def test_the_count_reads_every_page_and_says_when_it_stopped_early(queue, log_output):
    for n in range(5):
        queue.add(f"open item {n}", hours_ago=n + 1)

    assert queue.table.count_open(max_pages=10, page_size=2) == (5, True)  # pages of 2, 2, 1
    assert queue.table.count_open(max_pages=2, page_size=2) == (4, False)

    class SmallPages(ReviewTable):  # the same table, read two items per page, at most two pages
        def count_open(self, *, max_pages: int, page_size: int | None = None) -> tuple[int, bool]:
            return super().count_open(max_pages=max_pages, page_size=2)

    health = measure_queue(HealthDependencies(table=SmallPages(queue.table.table_name, queue.table.client),
                                              max_pages=2, clock=lambda: NOW))
    assert (health.status, health.depth, health.complete) == (HealthStatus.MEASURED, 4, False)
    assert health.oldest_age_seconds == pytest.approx(5 * HOUR, abs=0.01)
    warning = next(line for line in log_output() if "lower bound" in line["message"])
    assert warning["depth_at_least"] == 4 and warning["max_pages"] == 2


def test_a_queue_that_cannot_be_read_is_logged_and_counted_and_the_next_tick_runs_again(
        queue, lambda_context, capsys, log_output):
    missing = ReviewTable("no-such-table", queue.table.client)
    review_queue_metrics.dependencies.override(HealthDependencies(table=missing, max_pages=100, clock=lambda: NOW))

    first, second = _tick(lambda_context), _tick(lambda_context)  # no exception: nothing for Lambda to retry

    assert first["status"] == second["status"] == "unavailable"
    # Nothing measured is published as nothing (not as an empty queue); each failed tick counts once.
    assert emitted_metrics(capsys.readouterr().out) == {READ_FAILURES: [1.0, 1.0]}
    messages = [(line["level"], line["message"]) for line in log_output()]
    assert messages.count(("WARNING", "review queue not measured: the review table could not be read")) == 2
    assert ("ERROR", "review table unavailable") in messages  # the adapter names the table and the error


def test_the_function_refuses_to_start_without_a_review_table():
    with pytest.raises(SettingsError, match="REVIEW_TABLE"):
        ReviewQueueMetricsSettings.from_env({"STAGE": "dev"})


def test_the_local_stack_measures_the_queue_on_its_schedule_with_the_functions_own_wiring(tmp_path):
    """Schedules never fire on the emulator: the local event pump invokes the handler itself. Here with the
    function's real dependencies (built from the dev environment the tests run with) on a moto table."""
    from categorizer_cli.local.pump import EventPump
    from infra import config as infra
    from tests.support.settings import NAMES, STAGE

    review_queue_metrics.dependencies.reset()
    lines: list[str] = []
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(**REVIEW_TABLE.create_table_kwargs(NAMES.review_table))
        Queue(ReviewTable(NAMES.review_table, dynamodb)).add("waiting", hours_ago=0)
        boto3.client("sqs", region_name=REGION).create_queue(QueueName=NAMES.ingest_queue)
        pump = EventPump(endpoint=None, stage=infra.load_stage(STAGE), names=NAMES, state_file=tmp_path / "pump.json",
                         log=lines.append)

        first = pump.measure_review_queue_if_due()
        again = pump.measure_review_queue_if_due()  # within review_metrics_schedule: not due
        pump.last_review_metrics -= pump.review_metrics_every
        later = pump.measure_review_queue_if_due()
    review_queue_metrics.dependencies.reset()

    assert first is not None and later is not None and again is None
    assert (first["status"], first["depth"]) == (later["status"], later["depth"]) == ("measured", 1)
    assert pump.review_metrics_every == 300
    assert len([line for line in lines if line.startswith("schedule: review-queue-metrics answered")]) == 2
