"""A moto AWS with the real wiring: ingest bucket --(S3 notification)--> SQS queue (+ DLQ), results bucket.

Tests upload objects, receive the messages S3 actually queued, wrap them in the Lambda SQS event shape
and call the handler, emulating the event source mapping (delete what succeeded, return the rest).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from categorizer import model_store
from categorizer.adapters.s3_objects import get_s3_objects
from categorizer.engine import Classifier
from categorizer.settings import get_settings

INGEST_BUCKET = "categorizer-ingest-test"
RESULTS_BUCKET = "categorizer-results-test"
MAX_RECEIVES = 3


@pytest.fixture(scope="session")
def classifier(tiny_bundle) -> Classifier:
    return Classifier.from_path(tiny_bundle, threads=1)


def emf_metrics(stdout: str) -> Counter[str]:
    """Sum the metrics of every EMF blob Powertools printed."""
    totals: Counter[str] = Counter()
    for line in stdout.splitlines():
        try:
            blob = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(blob, dict) or "_aws" not in blob:
            continue
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                totals[metric["Name"]] += sum(value) if isinstance(value, list) else value
    return totals


@dataclass
class AwsStack:
    s3: Any
    sqs: Any
    queue_url: str
    queue_arn: str
    dlq_url: str
    setup_messages: list[dict] = field(default_factory=list)  # what S3 queued when wiring (the TestEvent)

    def upload(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> str:
        response = self.s3.put_object(Bucket=INGEST_BUCKET, Key=key, Body=body, Metadata=metadata or {})
        return response["ETag"].strip('"')

    def receive(self, expected: int | None = None) -> list[dict]:
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                            AttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
        if expected is not None:
            assert len(messages) == expected, messages
        return messages

    def lambda_event(self, messages: list[dict]) -> dict:
        return {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs", "eventSourceARN": self.queue_arn, "awsRegion": "us-east-1",
        } for m in messages]}

    def deliver(self, messages: list[dict], context) -> dict:
        """Run the handler like the event source mapping: delete successes, make failures visible again."""
        from categorizer.handlers import batch

        response = batch.handler(self.lambda_event(messages), context)
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] in failed:
                self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                                   VisibilityTimeout=0)
            else:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return response

    def upload_and_deliver(self, key: str, body: bytes, context, metadata: dict[str, str] | None = None) -> dict:
        self.upload(key, body, metadata)
        return self.deliver(self.receive(expected=1), context)

    def get(self, key: str, bucket: str = RESULTS_BUCKET) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None

    def manifest(self, key: str) -> dict:
        data = self.get(key)
        assert data is not None, f"no manifest at {key}"
        return json.loads(data)

    def versions(self, key: str) -> int:
        listing = self.s3.list_object_versions(Bucket=RESULTS_BUCKET, Prefix=key)
        return sum(1 for version in listing.get("Versions", []) if version["Key"] == key)

    def result_keys(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=RESULTS_BUCKET)
        return sorted(item["Key"] for item in listing.get("Contents", []))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, classifier: Classifier) -> Iterator[AwsStack]:
    monkeypatch.setenv("INGEST_PREFIX", "ingest/")
    monkeypatch.setenv("RESULTS_PREFIX", "results/")
    monkeypatch.setenv("RESULTS_BUCKET", RESULTS_BUCKET)
    monkeypatch.setenv("MAX_FILE_BYTES", str(50 * 1024 * 1024))
    monkeypatch.delenv("MODEL_DIR", raising=False)
    # The serving model is the real tiny bundle, loaded once per session rather than once per test.
    monkeypatch.setattr(model_store, "get_classifier", lambda: classifier)
    with mock_aws():
        get_settings.cache_clear()
        get_s3_objects.cache_clear()
        s3 = boto3.client("s3", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        s3.create_bucket(Bucket=INGEST_BUCKET)
        s3.create_bucket(Bucket=RESULTS_BUCKET)
        # Versioning on the results bucket lets tests count how many times each output was written.
        s3.put_bucket_versioning(Bucket=RESULTS_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        dlq_url = sqs.create_queue(QueueName="categorizer-batch-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue_url = sqs.create_queue(QueueName="categorizer-batch", Attributes={
            "VisibilityTimeout": "900",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}),
        })["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(Bucket=INGEST_BUCKET, NotificationConfiguration={
            "QueueConfigurations": [{
                "Id": "categorizer-ingest",
                "QueueArn": queue_arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "ingest/"}]}},
            }]})
        stack = AwsStack(s3=s3, sqs=sqs, queue_url=queue_url, queue_arn=queue_arn, dlq_url=dlq_url)
        stack.setup_messages = stack.receive()
        yield stack
    get_settings.cache_clear()
    get_s3_objects.cache_clear()
