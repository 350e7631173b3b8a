"""Parsing S3 notifications (as SQS delivers them) from the sample events in events/batch/."""

from __future__ import annotations

import json

import pytest

from categorizer.batch.notifications import InvalidNotificationError, parse_notification
from tests.support.events import load_event


def test_object_created_key_is_decoded():
    (event,) = parse_notification(json.dumps(load_event("batch/s3_object_created.json")))
    assert event.key == "ingest/team a/Q3 report+final été.csv"
    assert (event.bucket, event.etag, event.version_id, event.sequencer, event.size) == (
        "categorizer-ingest-123456789012", "0f343b0931126a20f133d67c2b018a3b", "096fKKXTRTtl3on89fVO.nfljtsv6qko",
        "0055AED6DCD90281E5", 1024)


def test_test_event_gives_nothing():
    assert parse_notification(json.dumps(load_event("batch/s3_test_event.json"))) == []


def test_a_notification_may_hold_several_records():
    events = parse_notification(json.dumps(load_event("batch/s3_object_created_two_records.json")))
    assert [e.key for e in events] == ["ingest/plain.jsonl", "ingest/a+b%2Fc (1).json"]
    assert all(e.version_id is None for e in events)


def test_sqs_event_bodies_are_notifications():
    sqs_event = load_event("batch/sqs_s3_mixed_batch.json")
    keys = [[e.key for e in parse_notification(record["body"])] for record in sqs_event["Records"]]
    assert keys == [[], ["ingest/team a/Q3 report+final été.csv"], ["ingest/plain.jsonl", "ingest/a+b%2Fc (1).json"]]


def test_other_event_types_are_skipped():
    notification = load_event("batch/s3_object_created.json")
    notification["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert parse_notification(json.dumps(notification)) == []


@pytest.mark.parametrize("body", ["not json", "[]", '{"Records": "x"}', '{"Records": [{"eventSource": "aws:s3", '
                                                                        '"eventName": "ObjectCreated:Put"}]}'])
def test_bodies_that_are_not_notifications_are_refused(body):
    with pytest.raises(InvalidNotificationError):
        parse_notification(body)
