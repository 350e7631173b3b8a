"""The console's ops data: the feedback summary is bounded (it never reads past a limit) and cached (one read
per minute per container), and says when it is a sample."""

from __future__ import annotations

from categorizer.adapters.feedback_table import FeedbackRecord
from categorizer.api import console_service
from categorizer.api.console_service import ConsoleService


def _record(i: int, *, predicted: str = "card_arrival", correct: str = "exchange_rate") -> FeedbackRecord:
    return FeedbackRecord(feedback_id=f"f{i}", prediction_id=f"p{i}", text="t", predicted_label=predicted,
                          correct_label=correct, comment=None, user_sub="u", client_id="c", model_version="v",
                          created_at="2026-01-01T00:00:00.000Z", fingerprint="x" * 64)


class _Table:
    def __init__(self, records: list[FeedbackRecord]) -> None:
        self.records, self.limits = records, []

    def read(self, limit: int) -> list[FeedbackRecord]:
        self.limits.append(limit)
        return self.records[:limit]


def _service(table: _Table, now: list[float]) -> ConsoleService:
    return ConsoleService(settings=None, user_files=None, files=None, registry=None,  # type: ignore[arg-type]
                          read_feedback=table.read, clock=lambda: now[0])


def test_the_summary_is_read_once_per_ttl_and_never_past_the_limit(monkeypatch):
    monkeypatch.setattr(console_service, "FEEDBACK_SUMMARY_MAX_ITEMS", 10)
    table, now = _Table([_record(i) for i in range(25)]), [100.0]
    service = _service(table, now)

    first = service.feedback_summary()
    now[0] += console_service.FEEDBACK_SUMMARY_TTL_SECONDS - 1
    assert service.feedback_summary() is first  # cached
    assert table.limits == [11]  # one bounded read: the limit plus one, to know the table holds more
    assert first["total"] == 10 and first["complete"] is False
    assert first["disagreement_rate"] == 1.0

    now[0] += 2
    service.feedback_summary()
    assert table.limits == [11, 11]  # expired: read again


def test_a_small_table_is_summarised_whole():
    table = _Table([_record(1), _record(2, correct="card_arrival")])
    summary = _service(table, [0.0]).feedback_summary()
    assert (summary["total"], summary["complete"], summary["disagreement_rate"]) == (2, True, 0.5)
    assert summary["top_corrections"] == [{"from": "card_arrival", "to": "exchange_rate", "count": 1}]
