"""SQS access for the batch chunk fan-out: the function sends itself chunk and join tasks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import boto3


class TaskQueue:
    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self.client = client or boto3.client("sqs")

    def send(self, tasks: Sequence[dict[str, Any]]) -> None:
        """Send every task or raise (a partial batch failure is an error: the caller's retry resends all)."""
        for start in range(0, len(tasks), 10):
            entries = [{"Id": str(i), "MessageBody": json.dumps(task)}
                       for i, task in enumerate(tasks[start : start + 10])]
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            if response.get("Failed"):
                raise RuntimeError(f"SQS refused {len(response['Failed'])} task(s): {response['Failed'][0]}")

