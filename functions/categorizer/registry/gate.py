"""The promotion gate: a candidate replaces the champion only if it is at least as good where it matters.

Both models are scored on the same data: the fixed hold-out and the held-out share of recent feedback.
The candidate passes when
- it knows the same labels as the champion, compared through the label catalogue's map (a renamed label
  under its new name, merged labels as one), none that the catalogue retired, and
- every label new to the champion reaches `new_label_min_precision` / `new_label_min_recall` on its held-out
  items (at least `new_label_min_held_out` of them: too few and the candidate is rejected, the label stays
  proposed),
- its hold-out macro-F1 does not drop (by more than `macro_f1_tolerance`, a stage setting),
- its accuracy on the feedback items is higher (there must be feedback items to compare on); when the job
  carries recorded label changes, not lower is enough (and no feedback is needed): the candidate is what
  makes those changes live,
- no class's hold-out F1 drops by more than `max_class_f1_drop`.

A rebuild (`rebuild=True`: the same training data as the published model, another recipe; `make up`'s
background build) brings no new data, so there is no feedback it was meant to fix: its hold-out macro-F1 must
rise by more than `macro_f1_tolerance` (a rebuild with the same recipe only re-rolls int8 noise, and is
refused), held-out feedback, if any, must not get worse, and none is needed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from categorizer.registry.evaluation import Scores


@dataclass(frozen=True)
class ModelScores:
    labels: tuple[str, ...]  # the champion's: under the catalogue's current names
    holdout: Scores
    feedback: Scores
    combined: Scores | None = None  # hold-out + held-out feedback and label examples: the new-label checks

    def summary(self) -> dict:
        return {"holdout": self.holdout.summary(), "feedback": self.feedback.summary(),
                "holdout_per_class_f1": {k: round(v, 6) for k, v in self.holdout.per_class_f1.items()}}


@dataclass(frozen=True)
class GatePolicy:
    """The stage's values (contract.LearningLoop, through promotion.policy_from): no defaults of its own."""

    max_class_f1_drop: float
    macro_f1_tolerance: float
    new_label_min_precision: float = 0.8
    new_label_min_recall: float = 0.7
    new_label_min_held_out: int = 5


@dataclass(frozen=True)
class LabelChanges:
    """What the job's catalogue snapshot changes: the gate compares through it."""

    retired: frozenset[str] = frozenset()  # names the catalogue renamed, merged or retired (or is about to)
    changes: tuple[str, ...] = ()  # recorded changes this candidate would make live, in words


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GateResult:
    checks: tuple[Check, ...]

    @property
    def accepted(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why it was rejected (the failed checks), or why it passed (all checks)."""
        failed = tuple(c.detail for c in self.checks if not c.passed)
        return failed or tuple(c.detail for c in self.checks)


def _labels_through_map(candidate: ModelScores, champion: ModelScores, changes: LabelChanges) -> Check:
    held = sorted(set(candidate.labels) & changes.retired)
    if held:
        return Check("labels", False, f"the candidate still holds retired label(s) {held[:5]}")
    missing = sorted(set(champion.labels) - set(candidate.labels))
    if missing:
        return Check("labels", False, f"the candidate lacks label(s) the champion has {missing[:5]}")
    new = sorted(set(candidate.labels) - set(champion.labels))
    return Check("labels", True, f"{len(champion.labels)} label(s) shared with the champion through the "
                                 f"catalogue's map" + (f"; new: {new[:10]}" if new else ""))


def _new_labels(candidate: ModelScores, champion: ModelScores, policy: GatePolicy) -> list[Check]:
    checks = []
    combined = candidate.combined
    for label in sorted(set(candidate.labels) - set(champion.labels)):
        held = combined.support.get(label, 0) if combined else 0
        if held < policy.new_label_min_held_out:
            checks.append(Check(f"new_label:{label}", False,
                                f"new label {label!r} has {held} held-out item(s), {policy.new_label_min_held_out} "
                                "needed to judge it: it stays proposed (add examples or feedback and retrain)"))
            continue
        precision, recall = combined.precision.get(label, 0.0), combined.recall.get(label, 0.0)  # type: ignore[union-attr]
        passed = precision >= policy.new_label_min_precision and recall >= policy.new_label_min_recall
        checks.append(Check(f"new_label:{label}", passed,
                            f"new label {label!r} on {held} held-out item(s): precision {precision:.3f} "
                            f"(>= {policy.new_label_min_precision}), recall {recall:.3f} "
                            f"(>= {policy.new_label_min_recall})"))
    return checks


def _same_labels(candidate: ModelScores, champion: ModelScores) -> Check:
    if set(candidate.labels) == set(champion.labels):
        return Check("labels", True, f"same {len(candidate.labels)} labels as the champion")
    added = sorted(set(candidate.labels) - set(champion.labels))
    removed = sorted(set(champion.labels) - set(candidate.labels))
    return Check("labels", False, f"label set differs from the champion's (added {added[:5]}, removed {removed[:5]})")


def _macro_f1(candidate: ModelScores, champion: ModelScores, policy: GatePolicy, rebuild: bool = False) -> Check:
    cand, champ = candidate.holdout.macro_f1, champion.holdout.macro_f1
    if candidate.holdout.n == 0 or math.isnan(cand):
        return Check("holdout_macro_f1", False, "no hold-out items to compare on")
    if rebuild:  # no new data: the hold-out is its only evidence, and it must beat int8 noise
        passed = cand > champ + policy.macro_f1_tolerance
        verb = "improved" if passed else "did not improve"
        return Check("holdout_macro_f1", passed,
                     f"rebuild: hold-out macro-F1 {verb}: {cand:.4f} vs champion {champ:.4f} ({cand - champ:+.4f}; "
                     f"a rebuild must gain more than {policy.macro_f1_tolerance:.4f})")
    passed = cand >= champ - policy.macro_f1_tolerance
    verb = "kept" if passed else "dropped"
    return Check("holdout_macro_f1", passed,
                 f"hold-out macro-F1 {verb}: {cand:.4f} vs champion {champ:.4f} ({cand - champ:+.4f}"
                 + (f", tolerance {policy.macro_f1_tolerance:.4f})" if policy.macro_f1_tolerance else ")"))


def _feedback_accuracy(candidate: ModelScores, champion: ModelScores, label_changes: bool = False,
                       rebuild: bool = False) -> Check:
    if rebuild:
        if candidate.feedback.n == 0:
            return Check("feedback_accuracy", True, "rebuild of the same training data: no held-out feedback "
                                                    "items, judged on the hold-out")
        cand, champ = candidate.feedback.accuracy, champion.feedback.accuracy
        verb = "kept" if cand >= champ else "dropped"
        return Check("feedback_accuracy", cand >= champ,
                     f"rebuild: accuracy on {candidate.feedback.n} feedback items {verb} (must not drop): "
                     f"{cand:.4f} vs champion {champ:.4f}")
    if candidate.feedback.n == 0:
        if label_changes:
            return Check("feedback_accuracy", True, "no held-out feedback items; the candidate carries label "
                                                    "changes, judged by the other checks")
        return Check("feedback_accuracy", False, "no held-out feedback items to compare on")
    cand, champ = candidate.feedback.accuracy, champion.feedback.accuracy
    passed = cand >= champ if label_changes else cand > champ
    if label_changes and passed:
        verb = "improved" if cand > champ else "kept"
        return Check("feedback_accuracy", True, f"accuracy on {candidate.feedback.n} feedback items {verb} "
                                                f"(label changes need no improvement): {cand:.4f} vs champion "
                                                f"{champ:.4f}")
    verb = "improved" if passed else "did not improve"
    return Check("feedback_accuracy", passed,
                 f"accuracy on {candidate.feedback.n} feedback items {verb}: {cand:.4f} vs champion {champ:.4f}")


def _class_f1(candidate: ModelScores, champion: ModelScores, policy: GatePolicy) -> Check:
    drops = sorted(((champ_f1 - candidate.holdout.per_class_f1.get(label, 0.0), label)
                    for label, champ_f1 in champion.holdout.per_class_f1.items()), reverse=True)
    too_far = [(drop, label) for drop, label in drops if drop > policy.max_class_f1_drop + 1e-12]
    if too_far:
        listed = ", ".join(f"{label} -{drop:.3f}" for drop, label in too_far[:5])
        return Check("class_f1", False, f"{len(too_far)} class(es) lost more than {policy.max_class_f1_drop:.3f} "
                                        f"F1: {listed}")
    worst = f" (largest drop: {drops[0][1]} {drops[0][0]:+.3f})" if drops and drops[0][0] > 0 else ""
    return Check("class_f1", True, f"no class lost more than {policy.max_class_f1_drop:.3f} F1{worst}")


def decide(candidate: ModelScores, champion: ModelScores, policy: GatePolicy,
           changes: LabelChanges | None = None, *, rebuild: bool = False) -> GateResult:
    """`changes`: the job's catalogue snapshot (None: no catalogue, the label sets must be equal).
    `rebuild`: the candidate was built from the same training data with another recipe (module docstring)."""
    labels = _same_labels(candidate, champion) if changes is None else \
        _labels_through_map(candidate, champion, changes)
    if not labels.passed:  # the other comparisons mean nothing across label sets
        return GateResult((labels,))
    new = _new_labels(candidate, champion, policy) if changes is not None else []
    return GateResult((labels, _macro_f1(candidate, champion, policy, rebuild),
                       _feedback_accuracy(candidate, champion, bool(changes and (changes.changes or new)), rebuild),
                       _class_f1(candidate, champion, policy), *new))
