"""S3 event notifications as SQS delivers them: decode keys, skip test events, keep ObjectCreated only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


class InvalidNotificationError(ValueError):
    """The message body is not an S3 event notification (it will never become one: do not retry)."""


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str  # decoded: S3 sends keys URL-encoded with "+" for spaces
    etag: str
    version_id: str | None
    size: int | None
    sequencer: str | None
    event_name: str


def parse_notification(body: str) -> list[ObjectCreated]:
    """The ObjectCreated records of one S3 notification; [] for `s3:TestEvent` and other event types."""
    try:
        message = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidNotificationError(f"message body is not JSON: {exc.msg}") from exc
    if not isinstance(message, dict):
        raise InvalidNotificationError("message body is not a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return []  # S3 sends one when the notification is configured
    records = message.get("Records")
    if not isinstance(records, list):
        raise InvalidNotificationError("message body has no Records list")
    return [_object_created(record) for record in records if _is_object_created(record)]


def _is_object_created(record: Any) -> bool:
    return (isinstance(record, dict) and record.get("eventSource") == "aws:s3"
            and str(record.get("eventName", "")).startswith("ObjectCreated:"))


def _object_created(record: dict[str, Any]) -> ObjectCreated:
    try:
        s3 = record["s3"]
        obj = s3["object"]
        return ObjectCreated(
            bucket=str(s3["bucket"]["name"]),
            key=unquote_plus(str(obj["key"])),
            etag=str(obj.get("eTag", "")).strip('"'),
            version_id=obj.get("versionId") or None,
            size=int(obj["size"]) if "size" in obj else None,
            sequencer=obj.get("sequencer"),
            event_name=str(record["eventName"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidNotificationError(f"S3 record is missing {exc}") from exc
