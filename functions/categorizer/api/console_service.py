"""What the console's Model and Ops pages read: the promotion history, an ops summary, the page's policy.

Clients are injected (built once per container in deps.build_services). The feedback summary is bounded (it
reads at most `FEEDBACK_SUMMARY_MAX_ITEMS` items) and cached for `FEEDBACK_SUMMARY_TTL_SECONDS`, so an ops page
left open in many browsers costs one bounded scan a minute, not a full table scan per request.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlparse

from categorizer.adapters.feedback_table import FeedbackRecord
from categorizer.adapters.user_files import UserFiles
from categorizer.api.file_service import FileService
from categorizer.contract import ApiSettings
from categorizer.observability import logger
from categorizer.registry.store import ModelRegistry, RegistryError

FEEDBACK_SUMMARY_MAX_ITEMS = 10_000
FEEDBACK_SUMMARY_TTL_SECONDS = 60.0


def origin(url: str) -> str | None:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}" if parsed.scheme in {"http", "https"} and parsed.netloc else None


@dataclass
class ConsoleService:
    settings: ApiSettings
    user_files: UserFiles
    files: FileService
    registry: Callable[[], ModelRegistry] | None  # None: a local bundle serves, there is no registry
    read_feedback: Callable[[int], Sequence[FeedbackRecord]]  # at most n items
    clock: Callable[[], float] = time.monotonic
    _cache: tuple[float, dict[str, Any]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ------------------------------------------------------------------ the page
    @cached_property
    def content_security_policy(self) -> str:
        """Computed once per container: the page may talk to itself, Cognito and the upload bucket only."""
        # Where presigned POSTs go: signing is local, no AWS call.
        upload = self.user_files.presigned_upload(self.settings.ingest_bucket, "probe", max_bytes=1, expires_in=1)
        connect = ["'self'", *sorted({o for o in (origin(self.settings.cognito_idp_endpoint), origin(upload["url"]))
                                      if o})]
        return "; ".join((
            "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' blob:",
            f"connect-src {' '.join(connect)}", "form-action 'none'", "frame-ancestors 'none'", "base-uri 'none'",
            "object-src 'none'",
        ))

    def security_headers(self) -> dict[str, str]:
        return {
            "Content-Security-Policy": self.content_security_policy,
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
        }

    def page_config(self) -> dict[str, Any]:
        """What the page needs to sign people in; all of it is public (a pool id and a client id are not secrets)."""
        settings = self.settings
        return {"region": settings.region, "user_pool_id": settings.identity.user_pool_id,
                "client_id": settings.console_client_id, "cognito_endpoint": settings.cognito_idp_endpoint,
                "stage": settings.stage}

    # ------------------------------------------------------------------ model page
    def model_history(self) -> dict[str, Any]:
        if self.registry is None:
            return {"available": False, "reason": "this deployment serves a local bundle: no registry",
                    "champion": None, "models": [], "decisions": []}
        try:
            registry = self.registry()
            decisions, models, champion = registry.decisions(), registry.list_models(), registry.champion_version()
        except RegistryError as exc:
            return {"available": False, "reason": str(exc), "champion": None, "models": [], "decisions": []}
        return {
            "available": True,
            "champion": champion,
            "models": [{"version": m.version, "registered_at": m.registered_at, "metrics": m.metrics,
                        "source": m.source} for m in reversed(models)],
            "decisions": [d.to_json() for d in reversed(decisions)][:100],
        }

    # ------------------------------------------------------------------ ops page
    def ops_summary(self, subject: str) -> dict[str, Any]:
        files = self.files.recent(subject)
        finished = [f for f in files if f.status != "processing"]
        rows = sum(f.rows_classified or 0 for f in finished)
        review = sum(f.needs_review or 0 for f in finished)
        return {
            "files": {
                "scope": "your recent files",
                "by_status": dict(Counter(f.status for f in files)),
                "rows_classified": rows,
                "low_confidence_share": (review / rows) if rows else None,
                "failed": [{"upload_id": f.upload_id, "name": f.name, "reason": f.failure_reason,
                            "message": f.failure_message} for f in files if f.status == "failed"],
            },
            "feedback": self.feedback_summary(),
            "not_available": [
                {"what": "predictions per hour, low-confidence share of API predictions",
                 "why": "emitted as CloudWatch metrics (Powertools EMF); this API does not read CloudWatch"},
                {"what": "alarm states",
                 "why": "alarms live in CloudWatch; see the AWS console or `categorizer status`"},
            ],
        }

    def feedback_summary(self) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            if self._cache is not None and now - self._cache[0] < FEEDBACK_SUMMARY_TTL_SECONDS:
                return self._cache[1]
            summary = self._read_feedback_summary()
            self._cache = (now, summary)
            return summary

    def _read_feedback_summary(self) -> dict[str, Any]:
        try:
            records = list(self.read_feedback(FEEDBACK_SUMMARY_MAX_ITEMS + 1))
        except Exception as exc:  # a missing read grant must not break the ops page
            logger.warning("feedback summary unavailable", extra={"error": str(exc)})
            return {"available": False, "reason": "the feedback table cannot be read by this function"}
        complete = len(records) <= FEEDBACK_SUMMARY_MAX_ITEMS
        records = records[:FEEDBACK_SUMMARY_MAX_ITEMS]
        since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
        disagree = [r for r in records if r.correct_label != r.predicted_label]
        return {
            "available": True,
            "total": len(records),
            "complete": complete,  # False: more than FEEDBACK_SUMMARY_MAX_ITEMS items; these figures are a sample
            "last_24h": sum(1 for r in records if r.created_at >= since),
            "disagreement_rate": (len(disagree) / len(records)) if records else None,
            "top_corrections": [{"from": a, "to": b, "count": n} for (a, b), n in Counter(
                (r.predicted_label, r.correct_label) for r in disagree).most_common(5)],
        }
