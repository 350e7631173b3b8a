"""A moto AWS with the real wiring: ingest bucket --(S3 notification)--> SQS queue (+ DLQ), results bucket.

Tests upload objects, receive the messages S3 actually queued, wrap them in the Lambda SQS event shape
and call the handler, emulating the event source mapping (delete what succeeded, return the rest).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from categorizer.adapters.s3_objects import S3Objects
from categorizer.adapters.task_queue import TaskQueue
from categorizer.contract import BatchSettings, FanOut
from categorizer.engine import Classifier
from categorizer.handlers import batch
from categorizer_cli.local.provision import create_ingest_queue, notify_queue
from infra import config as infra
from tests.support.observability import emf_metrics  # noqa: F401 - the batch tests import it from here
from tests.support.settings import batch_settings

INGEST_BUCKET = "categorizer-ingest-test"
RESULTS_BUCKET = "categorizer-results-test"
QUEUE = infra.queue_spec(infra.load_stage("dev"), infra.resource_names("dev", account="123456789012",
                                                                     region="us-east-1"))
MAX_RECEIVES = QUEUE.max_receive_count


@dataclass
class AwsStack:
    s3: Any
    sqs: Any
    queue_url: str
    queue_arn: str
    dlq_url: str
    classifier: Classifier
    setup_messages: list[dict] = field(default_factory=list)  # what S3 queued when wiring (the TestEvent)
    settings: BatchSettings = field(default_factory=lambda: batch_settings(results_bucket=RESULTS_BUCKET,
                                                                           max_file_bytes=50 * 1024 * 1024))

    def use(self, *, settings: BatchSettings | None = None, get_classifier=None, fanout: FanOut | None = None,
            services: batch.BatchServices | None = None) -> batch.BatchServices:
        """Hand the batch function its dependencies for this test (the real S3 client, on moto)."""
        if settings is not None:
            self.settings = settings
        if fanout is not None:
            self.settings = dataclasses.replace(self.settings, batch_queue_url=self.queue_url, fanout=fanout)
        services = services or batch.BatchServices(
            settings=self.settings, objects=S3Objects(), get_classifier=get_classifier or (lambda: self.classifier),
            tasks=TaskQueue(self.settings.batch_queue_url) if self.settings.batch_queue_url else None)
        batch.services.override(services)
        return services

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
def aws(classifier: Classifier) -> Iterator[AwsStack]:
    """The serving model is the real tiny bundle, loaded once per session rather than once per test."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        s3.create_bucket(Bucket=INGEST_BUCKET)
        s3.create_bucket(Bucket=RESULTS_BUCKET)
        # Versioning on the results bucket lets tests count how many times each output was written.
        s3.put_bucket_versioning(Bucket=RESULTS_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        # The stage's own queue shape and bucket notification, as the CDK app and the local stack make them.
        queue_url, queue_arn, dlq_url = create_ingest_queue(sqs, QUEUE)
        notify_queue(s3, bucket=INGEST_BUCKET, queue_arn=queue_arn)
        stack = AwsStack(s3=s3, sqs=sqs, queue_url=queue_url, queue_arn=queue_arn, dlq_url=dlq_url,
                         classifier=classifier)
        stack.setup_messages = stack.receive()
        stack.use()
        yield stack
        batch.services.reset()
