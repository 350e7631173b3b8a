"""DynamoDB access for user feedback (corrections of predictions): one item per feedback, written once.

Key design (also in docs/api.md):
- Partition key `pk` = "FEEDBACK#<feedback_id>", no sort key. The feedback id is derived from who sent it and
  what makes a retry a retry (the user's `Idempotency-Key`, else the prediction id), so a retried request
  lands on the same key and the conditional put (`attribute_not_exists(pk)`) stores it once.
- No index: the training export scans the table and keeps the latest correction of each prediction
  (registry/feedback_export.py); nothing reads by prediction at request time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from categorizer.contract.names import FEEDBACK_ITEM_PREFIX, FEEDBACK_TABLE
from categorizer.observability import logger, tracer

PARTITION_KEY = FEEDBACK_TABLE.partition_key.name
ITEM_PREFIX = FEEDBACK_ITEM_PREFIX
# Standard mode retries throttling and 5xx with jittered backoff (throttling: up to 1, 2, 4 s); four attempts
# stay well inside API Gateway's 29 s. The conditional put makes every retry safe.
MAX_ATTEMPTS = 4
RETRY_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}, connect_timeout=2,
                      read_timeout=5)

class FeedbackSource(StrEnum):
    """Where a feedback item came from: a caller of POST /v1/feedback, or a reviewer's decision."""

    API = "api"
    REVIEW = "review"


class FeedbackStoreError(Exception):
    """The feedback table cannot be reached or refused the write (after retries)."""


@dataclass(frozen=True)
class FeedbackRecord:
    feedback_id: str
    prediction_id: str
    text: str
    predicted_label: str
    correct_label: str
    comment: str | None
    user_sub: str
    client_id: str
    model_version: str
    created_at: str  # ISO-8601 UTC, e.g. 2026-05-01T12:00:00.123Z
    fingerprint: str  # sha256 of the correction's content: tells a retry from a conflicting reuse of a key
    idempotency_key: str | None = None
    source: FeedbackSource = FeedbackSource.API

    def to_item(self) -> dict[str, dict[str, str]]:
        item = {
            PARTITION_KEY: {"S": ITEM_PREFIX + self.feedback_id},
            "feedback_id": {"S": self.feedback_id},
            "prediction_id": {"S": self.prediction_id},
            "text": {"S": self.text},
            "predicted_label": {"S": self.predicted_label},
            "correct_label": {"S": self.correct_label},
            "user_sub": {"S": self.user_sub},
            "client_id": {"S": self.client_id},
            "model_version": {"S": self.model_version},
            "created_at": {"S": self.created_at},
            "fingerprint": {"S": self.fingerprint},
            "source": {"S": self.source.value},
        }
        if self.comment is not None:
            item["comment"] = {"S": self.comment}
        if self.idempotency_key is not None:
            item["idempotency_key"] = {"S": self.idempotency_key}
        return item

    @classmethod
    def from_item(cls, item: dict[str, dict[str, str]]) -> FeedbackRecord:
        def text(name: str) -> str | None:
            value = item.get(name)
            return value["S"] if value else None

        return cls(
            feedback_id=item["feedback_id"]["S"],
            prediction_id=item["prediction_id"]["S"],
            text=item["text"]["S"],
            predicted_label=item["predicted_label"]["S"],
            correct_label=item["correct_label"]["S"],
            comment=text("comment"),
            user_sub=item["user_sub"]["S"],
            client_id=item["client_id"]["S"],
            model_version=item["model_version"]["S"],
            created_at=item["created_at"]["S"],
            fingerprint=item["fingerprint"]["S"],
            idempotency_key=text("idempotency_key"),
            source=FeedbackSource(text("source") or FeedbackSource.API),  # items from before `source`: the API
        )


class FeedbackTable:
    def __init__(self, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self.client = client

    @classmethod
    def create(cls, table_name: str, *, region: str,
               session: boto3.Session | None = None) -> FeedbackTable:
        """`session`: the function's one boto3 session (another session parses botocore's data again)."""
        return cls(table_name, (session or boto3).client("dynamodb", region_name=region, config=RETRY_CONFIG))

    @tracer.capture_method(capture_response=False)
    def put_if_absent(self, record: FeedbackRecord) -> FeedbackRecord | None:
        """Store the record unless its key exists. Returns None when written, else the record already there."""
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=record.to_item(),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise self._store_error("write", exc) from exc
            existing = exc.response.get("Item") or self._get_item(record.feedback_id)
            if existing is None:  # pragma: no cover - a condition failed on an item that vanished
                raise FeedbackStoreError("feedback write conflicted with an item that no longer exists") from exc
            return FeedbackRecord.from_item(existing)
        except BotoCoreError as exc:
            raise self._store_error("write", exc) from exc
        return None

    def get(self, feedback_id: str) -> FeedbackRecord | None:
        try:
            item = self._get_item(feedback_id)
        except (ClientError, BotoCoreError) as exc:
            raise self._store_error("read", exc) from exc
        return FeedbackRecord.from_item(item) if item else None

    def _get_item(self, feedback_id: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key={PARTITION_KEY: {"S": ITEM_PREFIX + feedback_id}},
            ConsistentRead=True,
        )
        return response.get("Item")

    def _store_error(self, action: str, exc: Exception) -> FeedbackStoreError:
        logger.error("feedback table unavailable", extra={"action": action, "table": self.table_name,
                                                         "error": str(exc)})
        return FeedbackStoreError(f"the feedback store is unavailable ({action} failed); retry later")
