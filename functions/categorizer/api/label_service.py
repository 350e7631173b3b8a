"""The label catalogue as the API sees it: read it (or the champion's labels before it is stored), change it,
count feedback per label. Logic lives in registry/catalogue.py; this adds who is calling and what serves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from categorizer.adapters.feedback_table import FeedbackRecord
from categorizer.api.auth import Principal
from categorizer.engine import Classifier
from categorizer.registry import catalogue as cat
from categorizer.registry.feedback_export import latest_per_prediction


def actor_of(caller: Principal) -> str:
    return f"user:{caller.username}" if caller.username else f"client:{caller.client_id}"


@dataclass
class LabelService:
    store: cat.CatalogueStore | None  # None: a deployment serving a local bundle keeps no catalogue
    read_feedback: Callable[[], Sequence[FeedbackRecord]] | None = None

    def current(self, classifier: Classifier) -> cat.Catalogue | None:
        """The stored catalogue; None when there is none (yet): the champion's labels are the set."""
        return self.store.read() if self.store else None

    def view(self, classifier: Classifier) -> cat.Catalogue:
        stored = self.current(classifier)
        if stored is not None:
            return stored
        seeded = cat.seed(classifier.labels, champion=classifier.version, actor="champion")
        return cat.Catalogue(revision=0, champion=seeded.champion, labels=seeded.labels, history=seeded.history)

    def change(self, classifier: Classifier, caller: Principal,
               apply: Callable[[cat.Catalogue, str], cat.Catalogue]) -> cat.Catalogue:
        if self.store is None:
            raise cat.CatalogueUnavailableError("this deployment serves a local bundle: there is no registry to "
                                                "keep a label catalogue in")
        actor = actor_of(caller)
        return self.store.update(lambda current: apply(
            current or cat.seed(classifier.labels, champion=classifier.version, actor=actor), actor))

    def feedback_counts(self, catalogue: cat.Catalogue) -> Counter[str]:
        if self.read_feedback is None:
            return Counter()
        label_map = catalogue.label_map()
        counts: Counter[str] = Counter()
        for record in latest_per_prediction(self.read_feedback()):
            counts[record.correct_label] += 1
            mapped = label_map(record.correct_label)
            if mapped and mapped != record.correct_label:
                counts[mapped] += 1  # a renamed / merged label's items count under the new name too
        return counts


def label_json(entry: cat.LabelEntry, feedback: Counter[str]) -> dict[str, Any]:
    return {"name": entry.name, "description": entry.description, "status": entry.status.value,
            "examples": len(entry.examples), "feedback": feedback.get(entry.name, 0),
            "replaced_by": entry.replaced_by if not entry.live else None,
            "pending": entry.pending.describe(entry.name) if entry.pending else None}
