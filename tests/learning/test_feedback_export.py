"""The feedback export: latest correction per prediction, label checks, the held-out share, the skip rule,
and the JSONL the training entrypoint reads."""

from __future__ import annotations

from pathlib import Path

from categorizer.adapters.feedback_scan import FeedbackScan
from categorizer.adapters.model_registry_bucket import ModelBucket
from categorizer.registry.feedback_export import (
    ExportLocation,
    evaluation_set,
    held_out_for_evaluation,
    latest_per_prediction,
    plan_export,
    write_export,
)
from model_build.sagemaker_entry import read_feedback
from tests.learning.support import BUCKET, TABLE, Stage, feedback_record, store_feedback

LABELS = ("card_arrival", "exchange_rate", "lost_or_stolen_card")


def test_latest_correction_per_prediction_wins():
    records = [
        feedback_record("p1", "my card never came", "exchange_rate", created_at="2026-11-01T10:00:00.000Z"),
        feedback_record("p1", "my card never came", "card_arrival", created_at="2026-11-02T10:00:00.000Z"),
        feedback_record("p2", "rate for euros?", "exchange_rate", created_at="2026-11-01T09:00:00.000Z"),
        feedback_record("p1", "my card never came", "lost_or_stolen_card", created_at="2026-10-30T10:00:00.000Z"),
    ]
    latest = latest_per_prediction(records)
    assert {(r.prediction_id, r.correct_label) for r in latest} == {("p1", "card_arrival"), ("p2", "exchange_rate")}


def test_same_time_corrections_resolve_the_same_way_every_time():
    a = feedback_record("p1", "t", "card_arrival", created_at="2026-11-01T10:00:00.000Z", feedback_id="a")
    b = feedback_record("p1", "t", "exchange_rate", created_at="2026-11-01T10:00:00.000Z", feedback_id="b")
    assert latest_per_prediction([a, b])[0].feedback_id == latest_per_prediction([b, a])[0].feedback_id == "b"


def test_unknown_labels_and_empty_texts_are_refused_and_counted():
    records = [
        feedback_record("p1", "card?", "card_arrival", created_at="2026-11-01T10:00:00.000Z"),
        feedback_record("p2", "crypto?", "crypto_support", created_at="2026-11-01T10:00:00.000Z"),
        feedback_record("p3", "more crypto", "crypto_support", created_at="2026-11-01T10:00:00.000Z"),
        feedback_record("p4", "   ", "card_arrival", created_at="2026-11-01T10:00:00.000Z"),
        # An older correction with a valid label does not rescue a newer one with an unknown label.
        feedback_record("p5", "x", "card_arrival", created_at="2026-11-01T10:00:00.000Z"),
        feedback_record("p5", "x", "made_up", created_at="2026-11-02T10:00:00.000Z"),
    ]
    plan = plan_export(records, labels=LABELS, since=None, min_new=1, holdout_percent=0)
    assert [e.prediction_id for e in plan.train] == ["p1"]
    assert plan.usable.unknown_labels == {"crypto_support": 2, "made_up": 1}
    assert plan.usable.empty_texts == 1
    summary = plan.summary()
    assert summary["refused_unknown_label"] == {"crypto_support": 2, "made_up": 1}
    assert summary["latest_per_prediction"] == 5 and summary["usable"] == 1


def test_too_few_new_items_since_the_last_model_skips_with_the_reason():
    old = [feedback_record(f"old{i}", f"text {i}", "card_arrival", created_at=f"2026-10-0{i + 1}T00:00:00.000Z")
           for i in range(8)]
    new = [feedback_record(f"new{i}", f"new text {i}", "exchange_rate", created_at=f"2026-11-1{i}T00:00:00.000Z")
           for i in range(3)]
    plan = plan_export(old + new, labels=LABELS, since="2026-11-01T00:00:00.000Z", min_new=5, holdout_percent=0)
    assert plan.new_items == 3
    assert plan.skip_reason == ("only 3 new usable feedback item(s) since 2026-11-01T00:00:00.000Z; "
                                "5 needed to retrain")
    # Everything counts as new before the first model trained on feedback.
    first = plan_export(old + new, labels=LABELS, since=None, min_new=5, holdout_percent=0)
    assert first.new_items == 11 and first.skip_reason is None
    assert first.until == "2026-11-12T00:00:00.000Z"


def test_the_held_out_share_is_stable_and_never_trained_on():
    ids = [f"pred-{i}" for i in range(2000)]
    held = [i for i in ids if held_out_for_evaluation(i, 20)]
    assert 0.17 < len(held) / len(ids) < 0.23
    assert held == [i for i in ids if held_out_for_evaluation(i, 20)]  # the same side every time
    records = [feedback_record(i, f"text {i}", "card_arrival", created_at="2026-11-01T00:00:00.000Z") for i in ids]
    plan = plan_export(records, labels=LABELS, since=None, min_new=1, holdout_percent=20)
    assert {e.prediction_id for e in plan.evaluation} == set(held)
    assert not {e.prediction_id for e in plan.train} & set(held)
    assert evaluation_set(records, labels=LABELS, holdout_percent=20).texts == [f"text {i}" for i in sorted(held)]


def test_export_writes_the_channel_the_training_entrypoint_reads(stage: Stage, tmp_path: Path):
    records = [
        feedback_record("p1", "Where is my card? 🙁", "card_arrival", created_at="2026-11-01T10:00:00.000Z"),
        feedback_record("p1", "Where is my card? 🙁", "lost_or_stolen_card", created_at="2026-11-03T10:00:00.000Z"),
        feedback_record("p2", "euro rate", "exchange_rate", created_at="2026-11-02T10:00:00.000Z"),
        feedback_record("p3", "bitcoin", "crypto", created_at="2026-11-02T10:00:00.000Z"),
    ]
    store_feedback(records)
    read_back = FeedbackScan(TABLE).all_records()
    assert sorted(r.feedback_id for r in read_back) == sorted(r.feedback_id for r in records)

    plan = plan_export(read_back, labels=LABELS, since=None, min_new=1, holdout_percent=0)
    location = ExportLocation.for_job("training/", "categorizer-dev-20261123-210000")
    summary = write_export(ModelBucket(BUCKET), plan, location)
    assert summary["channel"] == f"s3://{BUCKET}/training/feedback/categorizer-dev-20261123-210000/train/"
    assert summary["feedback_until"] == "2026-11-03T10:00:00.000Z"
    assert stage.s3.list_objects_v2(Bucket=BUCKET, Prefix=location.train_prefix)["KeyCount"] == 1

    channel = tmp_path / "feedback.jsonl"
    stage.s3.download_file(BUCKET, f"{location.train_prefix}feedback.jsonl", str(channel))
    data, skipped = read_feedback([channel], labels=set(LABELS), weight=3.0)
    assert skipped == 0
    assert sorted(zip(data.texts, data.labels, strict=True)) == [("Where is my card? 🙁", "lost_or_stolen_card"),
                                                                 ("euro rate", "exchange_rate")]
    assert data.weights == [3.0, 3.0]


def test_review_decisions_are_exported_like_corrections(stage: Stage, tmp_path: Path):
    """A reviewer's accept and correct (source `review`) reach the training channel; the source survives the
    table round trip, and the hold-out rule applies to them as to any feedback."""
    import dataclasses

    from categorizer.adapters.feedback_table import FeedbackSource

    review = [dataclasses.replace(feedback_record(f"review-{i:032x}-0a1b2c3d", text, label, predicted_label=predicted,
                                                  created_at=f"2026-11-0{i + 1}T10:00:00.000Z"),
                                  source=FeedbackSource.REVIEW)
              for i, (text, label, predicted) in enumerate([("card still missing", "card_arrival", "card_arrival"),
                                                             ("euros please", "exchange_rate", "card_arrival")])]
    store_feedback(review)
    read_back = FeedbackScan(TABLE).all_records()
    assert {r.source for r in read_back} == {FeedbackSource.REVIEW}

    plan = plan_export(read_back, labels=LABELS, since=None, min_new=1, holdout_percent=0)
    location = ExportLocation.for_job("training/", "categorizer-dev-20261128-220000")
    write_export(ModelBucket(BUCKET), plan, location)
    channel = tmp_path / "feedback.jsonl"
    stage.s3.download_file(BUCKET, f"{location.train_prefix}feedback.jsonl", str(channel))
    data, skipped = read_feedback([channel], labels=set(LABELS), weight=3.0)
    assert skipped == 0
    assert sorted(zip(data.texts, data.labels, strict=True)) == [("card still missing", "card_arrival"),
                                                                 ("euros please", "exchange_rate")]
    held = [held_out_for_evaluation(r.prediction_id, 50) for r in review]
    half = plan_export(read_back, labels=LABELS, since=None, min_new=1, holdout_percent=50)
    assert len(half.evaluation) == sum(held)
    assert half.summary()["evaluation_by_source"] == ({"review": sum(held)} if any(held) else {})
    assert plan.summary()["train_by_source"] == {"review": 2}  # the export says what it trains on


def test_the_summary_counts_items_by_where_they_came_from():
    import dataclasses

    from categorizer.adapters.feedback_table import FeedbackSource

    api = feedback_record("api-1", "my card is late", "card_arrival", created_at="2026-11-01T10:00:00.000Z")
    review = dataclasses.replace(feedback_record("review-1", "euros please", "exchange_rate",
                                                 created_at="2026-11-02T10:00:00.000Z"),
                                 source=FeedbackSource.REVIEW)
    plan = plan_export([api, review], labels=LABELS, since=None, min_new=1, holdout_percent=0)
    assert plan.summary()["train_by_source"] == {"api": 1, "review": 1}
    assert plan.summary()["evaluation_by_source"] == {}
