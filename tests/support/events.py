"""Real-shape AWS events from events/ (API Gateway, S3/SQS, EventBridge, SageMaker)."""

from __future__ import annotations

import json
from typing import Any

from tests.support.paths import EVENTS


def load_event(name: str) -> dict[str, Any]:
    """`name` relative to events/, e.g. "batch/s3_object_created.json"."""
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))
