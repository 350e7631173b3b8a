"""DynamoDB access for the review queue: predictions that need a person, one item per normalised text.

Key design (also in docs/api.md):
- `pk` = "REVIEW#<item id>", the item id a hash of the normalised text: the same text queued again (from the
  API or another file) is the same item, whose `seen` count grows; a decided item is never reopened.
- While an item is open it has `open_queue` = "OPEN": the partition key of three sparse indexes, sorted by
  `confidence`, `novelty` and `queued_at` (one per `ReviewOrder`). Closing an item removes the attribute, so
  the indexes hold open items only and a listing never reads a closed one.
- A claim is a conditional update (`lease_holder`, `lease_until`): it succeeds only if nobody else holds an
  unexpired lease, so two reviewers never hold the same item. Closing is conditional on holding the lease.
- The queue's health (review-queue-metrics) reads the `open-by-time` index only: a COUNT of its items, and its
  first item in ascending `queued_at`, the oldest open one.
- `expires_at` (epoch seconds) is the table's TTL: items nobody decides go away after the stage's
  REVIEW_TTL_DAYS (DynamoDB deletes expired items within a few days of that time).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from categorizer.contract.names import (
    REVIEW_INDEX_BY_ORDER,
    REVIEW_ITEM_PREFIX,
    REVIEW_OPEN,
    REVIEW_OPEN_ATTRIBUTE,
    REVIEW_OPEN_BY_TIME,
    REVIEW_TABLE,
    ReviewOrder,
)
from categorizer.observability import logger

PARTITION_KEY = REVIEW_TABLE.partition_key.name
OPEN = REVIEW_OPEN_ATTRIBUTE.name
# Queue writes run beside a classification: two attempts and short timeouts, never a long stall.
QUEUE_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=1, read_timeout=2)
MAX_PAGES = 5  # a filtered listing reads at most this many index pages per call
_WHITESPACE = re.compile(r"\s+")


class SourceKind(StrEnum):
    API = "api"
    FILE = "file"


class QueueOutcome(StrEnum):
    QUEUED = "queued"  # a new open item
    SEEN_AGAIN = "seen_again"  # an open item's `seen` grew
    ALREADY_DECIDED = "already_decided"  # a person decided this text already: left closed


class ClaimRefusal(StrEnum):
    NOT_FOUND = "not_found"
    DECIDED = "decided"
    HELD = "held"  # another reviewer holds an unexpired lease
    NOT_HELD = "not_held"  # deciding without holding the lease (never claimed, expired, or someone else's)


class ReviewStoreError(Exception):
    """The review table cannot be reached or refused a read or write (after retries)."""


class ClaimRefusedError(Exception):
    def __init__(self, refusal: ClaimRefusal, item: ReviewItem | None = None) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal
        self.item = item


class InvalidCursorError(ValueError):
    """A listing cursor this table did not hand out."""


def normalised_text(text: str) -> str:
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def item_id_for(text: str) -> str:
    return hashlib.sha256(normalised_text(text).encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class ReviewSource:
    kind: SourceKind
    caller: str | None = None  # API: the caller's `sub`
    bucket: str | None = None  # file: where the row came from
    key: str | None = None
    row: int | None = None

    def to_attribute(self) -> dict[str, Any]:
        fields = {"kind": {"S": self.kind.value}}
        for name in ("caller", "bucket", "key"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = {"S": value}
        if self.row is not None:
            fields["row"] = {"N": str(self.row)}
        return {"M": fields}

    @classmethod
    def from_attribute(cls, value: dict[str, Any]) -> ReviewSource:
        fields = value.get("M", {})

        def text(name: str) -> str | None:
            return fields[name]["S"] if name in fields else None

        return cls(kind=SourceKind(text("kind") or SourceKind.API), caller=text("caller"), bucket=text("bucket"),
                   key=text("key"), row=int(fields["row"]["N"]) if "row" in fields else None)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in {"kind": self.kind.value, "caller": self.caller, "bucket": self.bucket,
                                  "key": self.key, "row": self.row}.items() if v is not None}


@dataclass(frozen=True)
class QueuedPrediction:
    """What the queue keeps of a prediction that needs review."""

    text: str
    source: ReviewSource
    model_version: str
    label: str
    confidence: float
    top_k: tuple[tuple[str, float], ...]
    novelty: float = 0.0
    out_of_scope: bool = False

    @property
    def item_id(self) -> str:
        return item_id_for(self.text)


@dataclass(frozen=True)
class ReviewItem:
    item_id: str
    text: str
    source: ReviewSource
    model_version: str
    label: str
    confidence: float
    top_k: tuple[tuple[str, float], ...]
    novelty: float
    out_of_scope: bool
    seen: int
    queued_at: str
    lease_holder: str | None = None
    lease_until: int | None = None
    decided_at: str | None = None
    decision: str | None = None
    decided_by: str | None = None
    decided_label: str | None = None
    feedback_id: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ReviewItem:
        def text(name: str) -> str | None:
            return item[name]["S"] if name in item else None

        top_k = tuple((entry["M"]["label"]["S"], float(entry["M"]["score"]["N"]))
                      for entry in item.get("top_k", {}).get("L", []))
        return cls(
            item_id=item[PARTITION_KEY]["S"].removeprefix(REVIEW_ITEM_PREFIX), text=item["text"]["S"],
            source=ReviewSource.from_attribute(item.get("source", {})), model_version=item["model_version"]["S"],
            label=item["label"]["S"], confidence=float(item["confidence"]["N"]), top_k=top_k,
            novelty=float(item.get("novelty", {}).get("N", 0)),
            out_of_scope=item.get("out_of_scope", {}).get("BOOL", False),
            seen=int(item.get("seen", {}).get("N", 1)), queued_at=item["queued_at"]["S"],
            lease_holder=text("lease_holder"),
            lease_until=int(item["lease_until"]["N"]) if "lease_until" in item else None,
            decided_at=text("decided_at"), decision=text("decision"), decided_by=text("decided_by"),
            decided_label=text("decided_label"), feedback_id=text("feedback_id"),
        )


def _number(value: float) -> dict[str, str]:
    return {"N": str(Decimal(repr(float(value))))}


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursorError("the cursor is not one this API handed out") from exc
    if not isinstance(key, dict) or PARTITION_KEY not in key or OPEN not in key:
        raise InvalidCursorError("the cursor is not one this API handed out")
    return key


class ReviewTable:
    def __init__(self, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self.client = client

    @classmethod
    def create(cls, table_name: str, *, region: str,
               session: boto3.Session | None = None) -> ReviewTable:
        """`session`: the function's one boto3 session (another session parses botocore's data again)."""
        return cls(table_name, (session or boto3).client("dynamodb", region_name=region, config=QUEUE_CONFIG))

    # --- queueing ------------------------------------------------------------------------------------------

    def queue(self, prediction: QueuedPrediction, *, now: str, expires_at: int) -> QueueOutcome:
        """Queue the prediction, or bump the open item of the same text. Raises ReviewStoreError."""
        values = {
            ":text": {"S": prediction.text}, ":mv": {"S": prediction.model_version},
            ":label": {"S": prediction.label}, ":conf": _number(prediction.confidence),
            ":nov": _number(prediction.novelty), ":oos": {"BOOL": prediction.out_of_scope},
            ":topk": {"L": [{"M": {"label": {"S": label}, "score": _number(score)}}
                            for label, score in prediction.top_k]},
            ":source": prediction.source.to_attribute(), ":now": {"S": now}, ":exp": {"N": str(expires_at)},
            ":open": {"S": REVIEW_OPEN}, ":one": {"N": "1"},
        }
        try:
            response = self.client.update_item(
                TableName=self.table_name, Key=self._key(prediction.item_id),
                UpdateExpression=("SET #text = if_not_exists(#text, :text), model_version = :mv, label = :label, "
                                  "confidence = :conf, novelty = :nov, out_of_scope = :oos, top_k = :topk, "
                                  "#source = if_not_exists(#source, :source), "
                                  "queued_at = if_not_exists(queued_at, :now), last_seen_at = :now, "
                                  "expires_at = :exp, #open = :open ADD seen :one"),
                ConditionExpression="attribute_not_exists(decided_at)",
                ExpressionAttributeNames={"#text": "text", "#source": "source", "#open": OPEN},
                ExpressionAttributeValues=values, ReturnValues="UPDATED_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return QueueOutcome.ALREADY_DECIDED
            raise ReviewStoreError(f"queue write failed: {exc}") from exc
        except BotoCoreError as exc:
            raise ReviewStoreError(f"queue write failed: {exc}") from exc
        return QueueOutcome.SEEN_AGAIN if "seen" in response.get("Attributes", {}) else QueueOutcome.QUEUED

    # --- reading -------------------------------------------------------------------------------------------

    def get(self, item_id: str) -> ReviewItem | None:
        try:
            item = self.client.get_item(TableName=self.table_name, Key=self._key(item_id),
                                        ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise self._store_error("read", exc) from exc
        return ReviewItem.from_item(item) if item else None

    def list_open(self, *, order: ReviewOrder, limit: int, cursor: str | None = None, label: str | None = None,
                  source: SourceKind | None = None) -> tuple[list[ReviewItem], str | None]:
        """Open items in `order`, at most `limit`, and a cursor for the rest (None: no more)."""
        index = REVIEW_INDEX_BY_ORDER[order]
        query = self._open_query(index.name, ScanIndexForward=order is ReviewOrder.UNCERTAIN, Limit=limit)
        filters = []
        if label is not None:
            filters.append("#label = :label")
            query["ExpressionAttributeNames"]["#label"] = "label"
            query["ExpressionAttributeValues"][":label"] = {"S": label}
        if source is not None:
            filters.append("#source.#kind = :kind")
            query["ExpressionAttributeNames"] |= {"#source": "source", "#kind": "kind"}
            query["ExpressionAttributeValues"][":kind"] = {"S": source.value}
        if filters:
            query["FilterExpression"] = " AND ".join(filters)
        start = decode_cursor(cursor) if cursor else None
        items: list[dict[str, Any]] = []
        last_key = None
        for _ in range(MAX_PAGES):
            if start:
                query["ExclusiveStartKey"] = start
            try:
                page = self.client.query(**query)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ValidationException" and start:
                    raise InvalidCursorError("the cursor is not one this API handed out") from exc
                raise self._store_error("list", exc) from exc
            except BotoCoreError as exc:
                raise self._store_error("list", exc) from exc
            items.extend(page.get("Items", []))
            last_key = page.get("LastEvaluatedKey")
            if len(items) >= limit or not last_key:
                break
            start = last_key
        if len(items) > limit:  # the next page starts right after the last item returned
            items = items[:limit]
            last = items[-1]
            last_key = {name: last[name] for name in (PARTITION_KEY, OPEN, index.sort_key.name)}  # type: ignore[union-attr]
        return [ReviewItem.from_item(item) for item in items], encode_cursor(last_key) if last_key else None

    # --- health -------------------------------------------------------------------------------------------

    def count_open(self, *, max_pages: int, page_size: int | None = None) -> tuple[int, bool]:
        """How many items are open, and whether every index page was read (False: the count is a lower bound).

        Select=COUNT over the sparse open index: only open items are in it, and no item is returned.
        `page_size` sets Limit (None: DynamoDB's 1 MB pages)."""
        query = self._open_query(REVIEW_OPEN_BY_TIME.name, Select="COUNT")
        if page_size is not None:
            query["Limit"] = page_size
        total = 0
        for _ in range(max_pages):
            page = self._health_query("count", query)
            total += page.get("Count", 0)
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                return total, True
            query["ExclusiveStartKey"] = last_key
        return total, False

    def oldest_open(self) -> ReviewItem | None:
        """The open item queued first (None: the queue is empty)."""
        query = self._open_query(REVIEW_OPEN_BY_TIME.name, ScanIndexForward=True, Limit=1)
        items = self._health_query("oldest", query).get("Items")
        return ReviewItem.from_item(items[0]) if items else None

    def _open_query(self, index_name: str, **extra: Any) -> dict[str, Any]:
        """A Query of one sparse open index: every item in it is open (listings and the health both read them)."""
        return {"TableName": self.table_name, "IndexName": index_name,
                "KeyConditionExpression": "#open = :open", "ExpressionAttributeNames": {"#open": OPEN},
                "ExpressionAttributeValues": {":open": {"S": REVIEW_OPEN}}, **extra}

    def _health_query(self, action: str, query: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.client.query(**query)
        except (ClientError, BotoCoreError) as exc:
            raise self._store_error(action, exc) from exc

    # --- claims and decisions ------------------------------------------------------------------------------

    def claim(self, item_id: str, *, reviewer: str, now: int, until: int) -> ReviewItem:
        """Lease the item to `reviewer` until `until` (epoch seconds). Raises ClaimRefusedError."""
        try:
            response = self.client.update_item(
                TableName=self.table_name, Key=self._key(item_id),
                UpdateExpression="SET lease_holder = :me, lease_until = :until",
                ConditionExpression=("attribute_exists(#pk) AND attribute_not_exists(decided_at) AND "
                                     "(attribute_not_exists(lease_until) OR lease_until < :now OR lease_holder = :me)"),
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
                ExpressionAttributeValues={":me": {"S": reviewer}, ":until": {"N": str(until)},
                                           ":now": {"N": str(now)}},
                ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            raise self._refusal("claim", exc, ClaimRefusal.HELD) from exc
        except BotoCoreError as exc:
            raise self._store_error("claim", exc) from exc
        return ReviewItem.from_item(response["Attributes"])

    def close(self, item_id: str, *, reviewer: str, decision: str, label: str | None, feedback_id: str | None,
              now: str, now_epoch: int) -> None:
        """Record the decision and take the item out of the open indexes; only the lease holder may."""
        values = {":me": {"S": reviewer}, ":decision": {"S": decision}, ":at": {"S": now},
                  ":now": {"N": str(now_epoch)}}
        updates = ["decided_at = :at", "decision = :decision", "decided_by = :me"]
        if label is not None:
            updates.append("decided_label = :label")
            values[":label"] = {"S": label}
        if feedback_id is not None:
            updates.append("feedback_id = :fid")
            values[":fid"] = {"S": feedback_id}
        self._conditional_update(
            item_id, f"SET {', '.join(updates)} REMOVE #open, lease_holder, lease_until",
            "attribute_not_exists(decided_at) AND lease_holder = :me AND lease_until >= :now", values)

    def release(self, item_id: str, *, reviewer: str, now_epoch: int) -> None:
        """Give the item back to the queue (a skip): it stays open for another reviewer."""
        self._conditional_update(
            item_id, "REMOVE lease_holder, lease_until ADD skips :one",
            "attribute_not_exists(decided_at) AND lease_holder = :me AND lease_until >= :now",
            {":me": {"S": reviewer}, ":one": {"N": "1"}, ":now": {"N": str(now_epoch)}})

    def _conditional_update(self, item_id: str, expression: str, condition: str, values: dict[str, Any]) -> None:
        try:
            self.client.update_item(TableName=self.table_name, Key=self._key(item_id), UpdateExpression=expression,
                                    ConditionExpression=f"attribute_exists(#pk) AND {condition}",
                                    ExpressionAttributeNames={"#pk": PARTITION_KEY, "#open": OPEN}
                                    if "#open" in expression else {"#pk": PARTITION_KEY},
                                    ExpressionAttributeValues=values,
                                    ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as exc:
            raise self._refusal("update", exc, ClaimRefusal.NOT_HELD) from exc
        except BotoCoreError as exc:
            raise self._store_error("update", exc) from exc

    def _refusal(self, action: str, exc: ClientError, undecided: ClaimRefusal) -> Exception:
        """What a failed conditional write means: the store failed, or the item is missing, decided, or (an open
        item) `undecided`: held by another reviewer for a claim, not held by this one for a close or release."""
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            return self._store_error(action, exc)
        old = exc.response.get("Item")
        if not old:
            return ClaimRefusedError(ClaimRefusal.NOT_FOUND)
        item = ReviewItem.from_item(old)
        return ClaimRefusedError(ClaimRefusal.DECIDED if item.decided_at else undecided, item)

    def _key(self, item_id: str) -> dict[str, Any]:
        return {PARTITION_KEY: {"S": REVIEW_ITEM_PREFIX + item_id}}

    def _store_error(self, action: str, exc: Exception) -> ReviewStoreError:
        logger.error("review table unavailable", extra={"action": action, "table": self.table_name,
                                                       "error": str(exc)})
        return ReviewStoreError(f"the review queue is unavailable ({action} failed); retry later")
