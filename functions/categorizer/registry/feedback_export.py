"""Turn the feedback table into the training job's feedback channel (and the gate's feedback hold-out).

- Latest correction per prediction wins (by created_at, then feedback id): a user who corrects a
  correction is believed the second time.
- Labels are checked against the champion's label set: a correction to a label the model cannot output is
  refused and counted, never trained on.
- A fixed share of predictions (by a hash of the prediction id, `feedback_holdout_percent`) never goes into
  training: those items are what the gate compares candidate and champion on. The hash keeps every item on
  the same side in every export, so no model is ever scored on feedback it was trained on.
- Training starts only with at least `min_new_feedback` usable items newer than the newest feedback any
  registered model was trained with; otherwise the export is skipped and says why.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from categorizer.adapters.feedback_table import FeedbackRecord
from categorizer.adapters.model_registry_bucket import ModelBucket
from categorizer.registry.evaluation import LabelledTexts

FEEDBACK_FILE = "feedback.jsonl"


@dataclass(frozen=True)
class FeedbackExample:
    prediction_id: str
    text: str
    label: str
    created_at: str

    def jsonl_row(self) -> str:
        # The shape model_build/sagemaker_entry.py reads from the feedback channel.
        return json.dumps({"text": self.text, "label": self.label}, ensure_ascii=False)


def latest_per_prediction(records: Iterable[FeedbackRecord]) -> list[FeedbackRecord]:
    latest: dict[str, FeedbackRecord] = {}
    for record in records:
        current = latest.get(record.prediction_id)
        if current is None or (record.created_at, record.feedback_id) > (current.created_at, current.feedback_id):
            latest[record.prediction_id] = record
    return sorted(latest.values(), key=lambda r: (r.created_at, r.prediction_id))


def held_out_for_evaluation(prediction_id: str, percent: int) -> bool:
    bucket = int.from_bytes(hashlib.sha256(prediction_id.encode()).digest()[:8], "big") % 100
    return bucket < percent


@dataclass(frozen=True)
class UsableFeedback:
    examples: tuple[FeedbackExample, ...]
    records_read: int
    unknown_labels: dict[str, int] = field(default_factory=dict)  # label -> items refused
    empty_texts: int = 0


def usable_feedback(records: Sequence[FeedbackRecord], labels: Iterable[str]) -> UsableFeedback:
    known = set(labels)
    unknown: Counter[str] = Counter()
    empty = 0
    examples = []
    for record in latest_per_prediction(records):
        text, label = record.text.strip(), record.correct_label.strip()
        if not text:
            empty += 1
        elif label not in known:
            unknown[label] += 1
        else:
            examples.append(FeedbackExample(record.prediction_id, text, label, record.created_at))
    return UsableFeedback(tuple(examples), len(records), dict(unknown), empty)


@dataclass(frozen=True)
class ExportPlan:
    usable: UsableFeedback
    train: tuple[FeedbackExample, ...]
    evaluation: tuple[FeedbackExample, ...]
    new_items: int
    since: str | None
    min_new: int

    @property
    def until(self) -> str | None:
        return max((e.created_at for e in self.usable.examples), default=None)

    @property
    def skip_reason(self) -> str | None:
        if self.new_items < self.min_new:
            return (f"only {self.new_items} new usable feedback item(s) since "
                    f"{self.since or 'the first model'}; {self.min_new} needed to retrain")
        if not self.train:
            return "no feedback items for training (all are held out for evaluation)"
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "records_read": self.usable.records_read,
            "latest_per_prediction": len(self.usable.examples) + sum(self.usable.unknown_labels.values())
            + self.usable.empty_texts,
            "refused_unknown_label": self.usable.unknown_labels,
            "refused_empty_text": self.usable.empty_texts,
            "usable": len(self.usable.examples),
            "train_items": len(self.train),
            "evaluation_items": len(self.evaluation),
            "new_items": self.new_items,
            "min_new_items": self.min_new,
            "since": self.since,
            "feedback_until": self.until,
            "skipped": self.skip_reason,
        }


def plan_export(records: Sequence[FeedbackRecord], *, labels: Iterable[str], since: str | None, min_new: int,
                holdout_percent: int) -> ExportPlan:
    usable = usable_feedback(records, labels)
    train = tuple(e for e in usable.examples if not held_out_for_evaluation(e.prediction_id, holdout_percent))
    evaluation = tuple(e for e in usable.examples if held_out_for_evaluation(e.prediction_id, holdout_percent))
    new_items = sum(1 for e in usable.examples if since is None or e.created_at > since)
    return ExportPlan(usable=usable, train=train, evaluation=evaluation, new_items=new_items, since=since,
                      min_new=min_new)


def evaluation_set(records: Sequence[FeedbackRecord], *, labels: Iterable[str], holdout_percent: int) -> LabelledTexts:
    """The feedback items no model trains on: what the gate scores both models on."""
    usable = usable_feedback(records, labels)
    held = [e for e in usable.examples if held_out_for_evaluation(e.prediction_id, holdout_percent)]
    return LabelledTexts([e.text for e in held], [e.label for e in held])


@dataclass(frozen=True)
class ExportLocation:
    train_prefix: str  # the feedback channel (S3Prefix)
    summary_key: str

    @classmethod
    def for_job(cls, training_prefix: str, job_name: str) -> ExportLocation:
        base = f"{training_prefix}feedback/{job_name}/"
        return cls(train_prefix=f"{base}train/", summary_key=f"{base}export.json")


def write_export(bucket: ModelBucket, plan: ExportPlan, location: ExportLocation) -> dict[str, Any]:
    body = "".join(f"{e.jsonl_row()}\n" for e in plan.train).encode()
    bucket.put_bytes(f"{location.train_prefix}{FEEDBACK_FILE}", body, content_type="application/x-ndjson")
    summary = {**plan.summary(), "channel": bucket.uri(location.train_prefix)}
    bucket.put_json(location.summary_key, summary)
    return summary
