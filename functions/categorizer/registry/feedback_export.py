"""Turn the feedback table into the training job's feedback channel (and the gate's feedback hold-out).

- Latest correction per prediction wins (by created_at, then feedback id): a user who corrects a
  correction is believed the second time.
- Labels go through the label catalogue's map (registry/catalogue.py): a renamed or merged label's items are
  exported under the new name, a retired label's under its replacement, or dropped (counted) without one.
  What remains must be a label of the next model (the catalogue's target set, plus any champion label the
  catalogue never had); anything else is refused and counted, never trained on. Stored feedback is never
  rewritten: the map is applied here.
- Each label with example texts (a proposed label, or one added earlier) contributes them as items, split
  train / held-out by the same hash rule as feedback (the item id is the label and the text's hash).
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
from categorizer.registry.catalogue import Catalogue, LabelMap, seed
from categorizer.registry.evaluation import LabelledTexts

FEEDBACK_FILE = "feedback.jsonl"
LABEL_MAP_FILE = "label_map.json"  # the `labels` channel: what model_build/sagemaker_entry.py reads
CATALOGUE_SNAPSHOT_FILE = "catalogue.json"  # the catalogue this job was exported with (promote reads it)
EXAMPLE_ID_PREFIX = "label-example:"
EXAMPLE_SOURCE = "label_example"  # an example text of the catalogue, not a feedback item


@dataclass(frozen=True)
class FeedbackExample:
    prediction_id: str
    text: str
    label: str
    created_at: str
    source: str = EXAMPLE_SOURCE  # a FeedbackSource value (api, review) or a catalogue example

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
    dropped_retired: dict[str, int] = field(default_factory=dict)  # retired without replacement -> items dropped
    mapped: dict[str, int] = field(default_factory=dict)  # "old -> new" -> items exported under the new name
    label_examples: dict[str, int] = field(default_factory=dict)  # label -> catalogue example texts exported


def catalogue_for(labels: Iterable[str], catalogue: Catalogue | None) -> Catalogue:
    """The catalogue to export with: the stored one, or (before any change) the champion's labels."""
    if catalogue is not None:
        return catalogue
    seeded = seed(labels, champion=None, actor="champion")
    return Catalogue(revision=0, champion=None, labels=seeded.labels, history=seeded.history)  # not stored: 0


def export_labels(champion_labels: Iterable[str], catalogue: Catalogue) -> tuple[LabelMap, frozenset[str]]:
    """The map, and the labels the next model is trained for: the catalogue's target set plus any label the
    champion serves that the catalogue never had (a published model's), mapped."""
    label_map = catalogue.label_map()
    known = set(catalogue.target_labels())
    for label in champion_labels:
        mapped = label_map(label)
        if mapped is not None and catalogue.get(label) is None:
            known.add(mapped)
    return label_map, frozenset(known)


def example_id(label: str, text: str) -> str:
    return f"{EXAMPLE_ID_PREFIX}{label}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def usable_feedback(records: Sequence[FeedbackRecord], labels: Iterable[str],
                    catalogue: Catalogue | None = None) -> UsableFeedback:
    labels = tuple(labels)
    catalogue = catalogue_for(labels, catalogue)
    label_map, known = export_labels(labels, catalogue)
    unknown: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    mapped: Counter[str] = Counter()
    empty = 0
    examples = []
    for record in latest_per_prediction(records):
        text, sent = record.text.strip(), record.correct_label.strip()
        label = label_map(sent)
        if not text:
            empty += 1
        elif label is None:
            dropped[sent] += 1
        elif label not in known:
            unknown[sent] += 1
        else:
            if label != sent:
                mapped[f"{sent} -> {label}"] += 1
            examples.append(FeedbackExample(record.prediction_id, text, label, record.created_at,
                                            record.source.value))
    from_catalogue: Counter[str] = Counter()
    for entry in catalogue.labels:
        label = label_map(entry.name)
        if label is None or label not in known:
            continue
        for text in entry.examples:
            examples.append(FeedbackExample(example_id(entry.name, text), text, label, entry.added_at or ""))
            from_catalogue[label] += 1
    return UsableFeedback(tuple(examples), len(records), dict(unknown), empty, dict(dropped), dict(mapped),
                          dict(from_catalogue))


@dataclass(frozen=True)
class ExportPlan:
    usable: UsableFeedback
    train: tuple[FeedbackExample, ...]
    evaluation: tuple[FeedbackExample, ...]
    new_items: int
    since: str | None
    min_new: int
    label_changes: tuple[str, ...] = ()  # recorded catalogue changes this export trains for
    catalogue_revision: int = 0
    trained_revision: int = 0  # the newest catalogue revision a registered model was already trained for

    @property
    def until(self) -> str | None:
        return max((e.created_at for e in self.usable.examples), default=None)

    @property
    def skip_reason(self) -> str | None:
        # Label changes start a job without new feedback once per catalogue revision: a proposed label whose
        # candidate was rejected (too few held-out items) waits for more items, not for the next tick.
        changes_untrained = bool(self.label_changes) and self.catalogue_revision > self.trained_revision
        if self.new_items < self.min_new and not changes_untrained:
            return (f"only {self.new_items} new usable feedback item(s) since "
                    f"{self.since or 'the first model'}; {self.min_new} needed to retrain")
        if not self.train:
            return "no feedback items for training (all are held out for evaluation)"
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "records_read": self.usable.records_read,
            "latest_per_prediction": len(self.usable.examples) - sum(self.usable.label_examples.values())
            + sum(self.usable.unknown_labels.values()) + self.usable.empty_texts
            + sum(self.usable.dropped_retired.values()),
            "refused_unknown_label": self.usable.unknown_labels,
            "refused_empty_text": self.usable.empty_texts,
            "dropped_retired_label": self.usable.dropped_retired,
            "mapped_labels": self.usable.mapped,
            "label_examples": self.usable.label_examples,
            "label_changes": list(self.label_changes),
            "catalogue_revision": self.catalogue_revision,
            "usable": len(self.usable.examples),
            "train_items": len(self.train),
            "evaluation_items": len(self.evaluation),
            # Where the items came from: API corrections, review decisions, catalogue examples.
            "train_by_source": dict(sorted(Counter(e.source for e in self.train).items())),
            "evaluation_by_source": dict(sorted(Counter(e.source for e in self.evaluation).items())),
            "new_items": self.new_items,
            "min_new_items": self.min_new,
            "since": self.since,
            "feedback_until": self.until,
            "skipped": self.skip_reason,
        }


def pending_label_changes(catalogue: Catalogue | None, champion_labels: Iterable[str]) -> tuple[str, ...]:
    """What the next promotion would make live: recorded changes, and labels the champion cannot predict."""
    if catalogue is None:
        return ()
    serving = set(champion_labels)
    changes = [pending.describe(name) for name, pending in catalogue.pending_changes()]
    changes += [f"add {e.name!r}" for e in catalogue.labels if e.live and e.pending is None
                and e.name not in serving]
    return tuple(changes)


def plan_export(records: Sequence[FeedbackRecord], *, labels: Iterable[str], since: str | None, min_new: int,
                holdout_percent: int, catalogue: Catalogue | None = None, trained_revision: int = 0) -> ExportPlan:
    labels = tuple(labels)
    usable = usable_feedback(records, labels, catalogue)
    train = tuple(e for e in usable.examples if not held_out_for_evaluation(e.prediction_id, holdout_percent))
    evaluation = tuple(e for e in usable.examples if held_out_for_evaluation(e.prediction_id, holdout_percent))
    new_items = sum(1 for e in usable.examples if since is None or e.created_at > since)
    return ExportPlan(usable=usable, train=train, evaluation=evaluation, new_items=new_items, since=since,
                      min_new=min_new, label_changes=pending_label_changes(catalogue, labels),
                      catalogue_revision=catalogue.revision if catalogue else 0, trained_revision=trained_revision)


def evaluation_set(records: Sequence[FeedbackRecord], *, labels: Iterable[str], holdout_percent: int,
                   catalogue: Catalogue | None = None) -> LabelledTexts:
    """The items no model trains on (feedback and label examples): what the gate scores both models on."""
    usable = usable_feedback(records, labels, catalogue)
    held = [e for e in usable.examples if held_out_for_evaluation(e.prediction_id, holdout_percent)]
    return LabelledTexts([e.text for e in held], [e.label for e in held])


@dataclass(frozen=True)
class ExportLocation:
    train_prefix: str  # the feedback channel (S3Prefix)
    summary_key: str
    labels_prefix: str = ""  # the labels channel: label_map.json, and the catalogue snapshot

    @classmethod
    def for_job(cls, training_prefix: str, job_name: str) -> ExportLocation:
        base = f"{training_prefix}feedback/{job_name}/"
        return cls(train_prefix=f"{base}train/", summary_key=f"{base}export.json", labels_prefix=f"{base}labels/")

    @property
    def catalogue_key(self) -> str:
        return f"{self.labels_prefix}{CATALOGUE_SNAPSHOT_FILE}"


def read_snapshot(bucket: ModelBucket, location: ExportLocation) -> Catalogue | None:
    """The catalogue a job was exported with: what its promotion may make live (later changes wait)."""
    data = bucket.get_json(location.catalogue_key)
    return Catalogue.from_json(data) if data else None


def write_export(bucket: ModelBucket, plan: ExportPlan, location: ExportLocation, *,
                 catalogue: Catalogue | None = None, champion_labels: Iterable[str] = ()) -> dict[str, Any]:
    body = "".join(f"{e.jsonl_row()}\n" for e in plan.train).encode()
    bucket.put_bytes(f"{location.train_prefix}{FEEDBACK_FILE}", body, content_type="application/x-ndjson")
    snapshot = catalogue_for(champion_labels, catalogue)
    label_map, known = export_labels(champion_labels, snapshot)
    # The entrypoint applies `map` to the base data and the hold-out; `labels` is what the model must know.
    bucket.put_json(f"{location.labels_prefix}{LABEL_MAP_FILE}", {
        "map": label_map.to_json(), "labels": sorted(known), "catalogue_revision": snapshot.revision})
    bucket.put_json(location.catalogue_key, snapshot.to_json())
    summary = {**plan.summary(), "channel": bucket.uri(location.train_prefix),
               "labels_channel": bucket.uri(location.labels_prefix)}
    bucket.put_json(location.summary_key, summary)
    return summary
