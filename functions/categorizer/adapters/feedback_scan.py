"""Read every feedback item (the export needs all of them to keep the latest correction per prediction).

The items are those the API writes (feedback_table.FeedbackRecord); a paginated Scan reads them all.
Feedback volumes are thousands of small items, so a full scan per weekly export is cheap.
"""

from __future__ import annotations

from typing import Any

import boto3

from categorizer.adapters.feedback_table import ITEM_PREFIX, PARTITION_KEY, RETRY_CONFIG, FeedbackRecord
from categorizer.observability import logger


class FeedbackScan:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self.client = client or boto3.client("dynamodb", config=RETRY_CONFIG)

    def all_records(self) -> list[FeedbackRecord]:
        return self.records()

    def records(self, limit: int | None = None) -> list[FeedbackRecord]:
        """Every feedback item, or the first `limit` the scan returns (a bounded read for summaries)."""
        records: list[FeedbackRecord] = []
        unreadable = 0
        pages = self.client.get_paginator("scan").paginate(
            TableName=self.table_name, ConsistentRead=True,
            PaginationConfig={"MaxItems": limit} if limit is not None else {})
        for page in pages:
            for item in page.get("Items", []):
                if not item.get(PARTITION_KEY, {}).get("S", "").startswith(ITEM_PREFIX):
                    continue
                try:
                    records.append(FeedbackRecord.from_item(item))
                except KeyError:  # an item without the attributes the API writes: count it, never guess
                    unreadable += 1
        if unreadable:
            logger.warning("feedback items without the expected attributes were skipped",
                           extra={"unreadable_items": unreadable, "table": self.table_name})
        return records
