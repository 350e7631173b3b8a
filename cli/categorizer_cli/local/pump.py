"""What AWS does between the pieces, done locally: the SQS event source, the schedule, SageMaker's events.

- Polls the ingest queue (filled by the emulator's S3 notifications) and invokes the batch handler with
  the SQS event Lambda would send; deletes the messages it did not report as failed (as Lambda does),
  so failed ones come back after the visibility timeout and reach the DLQ after maxReceiveCount.
- Fires the retraining schedule (the stage's `rate(...)`) by invoking the start-training handler with an
  EventBridge Scheduled Event, and the review-queue-metrics schedule (`review_metrics_schedule`) the same way
  (its EMF lines land in the stack's log).
- Runs each new training job for real (the emulator marks jobs Completed and never runs them) and hands
  the resulting state-change event to the promote handler.
"""

from __future__ import annotations

import json
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from categorizer_cli.local.config import ACCOUNT, REGION
from categorizer_cli.local.lambda_context import LocalLambdaContext
from categorizer_cli.local.provision import client
from infra import config as infra


def context_for(function: infra.FunctionName, stage: infra.StageConfig, names: infra.ResourceNames):
    sizing = infra.function_sizing(stage, function)
    return LocalLambdaContext(function_name=names.function(function), memory_limit_in_mb=sizing.memory_mb,
                              timeout_seconds=sizing.timeout_seconds)


def sqs_event(messages: list[dict], queue_arn: str) -> dict:
    """The event Lambda's SQS event source sends, built from ReceiveMessage's answer."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": m.get("MessageAttributes", {}),
        "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION,
    } for m in messages]}


def scheduled_event(rule_arn: str, when: datetime) -> dict:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
            "resources": [rule_arn], "detail": {}}


_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")


def rate_seconds(expression: str) -> int:
    match = _RATE.fullmatch(expression.strip())
    if not match:
        raise ValueError(f"only rate(...) schedules run locally, not {expression!r}")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


class EventPump(threading.Thread):
    def __init__(self, *, endpoint: str, stage: infra.StageConfig, names: infra.ResourceNames,
                 state_file, log: Callable[[str], None], snapshot: Callable[[], None] | None = None,
                 snapshot_every_seconds: float = 15.0) -> None:
        super().__init__(name="event-pump", daemon=True)
        self.endpoint, self.stage, self.names = endpoint, stage, names
        self.log = log
        self.stopping = threading.Event()
        self.state_file = state_file
        self.snapshot, self.snapshot_every = snapshot, snapshot_every_seconds
        self.sqs = client("sqs", endpoint)
        self.queue_url = self.sqs.get_queue_url(QueueName=names.ingest_queue)["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url,
                                                       AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.schedule_every = rate_seconds(stage.retrain_schedule)
        self.review_metrics_every = rate_seconds(stage.review_metrics_schedule)
        self.last_review_metrics: float | None = None  # monotonic; None: measure on the first pass
        self.state = self._load_state()
        self.busy = threading.Lock()  # one pump step at a time (CLI `retrain` takes it too)

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        last_snapshot = time.monotonic()
        last_errors: dict[str, str] = {}
        while not self.stopping.is_set():
            for step in (self.pump_ingest_queue, self.fire_schedule_if_due, self.measure_review_queue_if_due,
                         self.run_new_training_jobs):
                try:
                    with self.busy:
                        step()
                    last_errors.pop(step.__name__, None)
                except Exception:  # a pump that dies silently would stall the stack: log and go on
                    error = traceback.format_exc()
                    if last_errors.get(step.__name__) != error:  # the same failure every second: log it once
                        self.log(f"event pump: {step.__name__} failed:\n{error}")
                    last_errors[step.__name__] = error
                    time.sleep(1)
            if self.snapshot and time.monotonic() - last_snapshot >= self.snapshot_every:
                try:
                    self.snapshot()
                except Exception:
                    self.log(f"snapshot failed:\n{traceback.format_exc()}")
                last_snapshot = time.monotonic()

    def stop(self) -> None:
        self.stopping.set()

    # ------------------------------------------------------------------ steps
    def pump_ingest_queue(self) -> int:
        from categorizer.handlers.batch import handler as batch_handler

        answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.stage.batch_size,
                                          WaitTimeSeconds=1, AttributeNames=["All"], MessageAttributeNames=["All"])
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        context = context_for(infra.FunctionName.BATCH, self.stage, self.names)
        response = batch_handler(sqs_event(messages, self.queue_arn), context) or {}
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        for message in messages:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        self.log(f"batch: {len(messages)} message(s), {len(failed)} failed")
        return len(messages)

    def fire_schedule_if_due(self, *, force: bool = False) -> dict | None:
        if not (self.stage.retrain_enabled or force):
            return None
        now = time.time()
        last = self.state.get("last_schedule", 0.0)
        if not force:
            if not last:  # the first start only arms the schedule
                self._save_state(last_schedule=now)
                return None
            if now - last < self.schedule_every:
                return None
        from categorizer.handlers.start_training import handler as start_training

        rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{self.names.stack}-retrain"
        context = context_for(infra.FunctionName.START_TRAINING, self.stage, self.names)
        result = start_training(scheduled_event(rule_arn, datetime.now(UTC)), context)
        self._save_state(last_schedule=now)
        self.log(f"schedule: start-training answered {json.dumps(result, default=str)[:500]}")
        return result

    def measure_review_queue_if_due(self) -> dict | None:
        """The review-queue-metrics schedule. Nothing to arm (a measurement changes nothing): the first pass
        measures, then every `review_metrics_schedule`; a failing tick waits for the next one, as in AWS."""
        now = time.monotonic()
        if self.last_review_metrics is not None and now - self.last_review_metrics < self.review_metrics_every:
            return None
        self.last_review_metrics = now
        from categorizer.handlers.review_queue_metrics import handler as review_queue_metrics

        rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{self.names.training_job_prefix}-review-queue-metrics"
        context = context_for(infra.FunctionName.REVIEW_QUEUE_METRICS, self.stage, self.names)
        result = review_queue_metrics(scheduled_event(rule_arn, datetime.now(UTC)), context)
        self.log(f"schedule: review-queue-metrics answered {json.dumps(result, default=str)[:300]}")
        return result

    def run_new_training_jobs(self) -> list[dict]:
        """Jobs the emulator accepted but cannot run: train them here, then tell the promote handler."""
        from categorizer_cli.local.sagemaker_job import run_training_job

        sagemaker = client("sagemaker", self.endpoint)
        done = set(self.state.get("jobs_run", []))
        jobs = [j["TrainingJobName"] for j in sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
                if j["TrainingJobName"].startswith(self.names.training_job_prefix)
                and j["TrainingJobName"] not in done]
        outcomes = []
        for job in sorted(jobs):
            self.log(f"training: running job {job} locally")
            self._save_state(jobs_run=[*done, job])  # never run a job twice, even if it crashes
            done.add(job)
            outcome = run_training_job(job, endpoint=self.endpoint)
            self.log(f"training: {job} -> {json.dumps(outcome, default=str)[:500]}")
            outcomes.append(outcome)
        return outcomes

    # ------------------------------------------------------------------ state
    def _load_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _save_state(self, **changes) -> None:
        self.state.update(changes)
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(self.state))
