"""The promotion gate: a candidate replaces the champion only if it is at least as good where it matters.

Both models are scored on the same data: the fixed hold-out and the held-out share of recent feedback.
The candidate passes when
- it knows the same labels as the champion,
- its hold-out macro-F1 does not drop (by more than `macro_f1_tolerance`, a stage setting),
- its accuracy on the feedback items is higher (there must be feedback items to compare on),
- no class's hold-out F1 drops by more than `max_class_f1_drop`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from categorizer.registry.evaluation import Scores


@dataclass(frozen=True)
class ModelScores:
    labels: tuple[str, ...]
    holdout: Scores
    feedback: Scores

    def summary(self) -> dict:
        return {"holdout": self.holdout.summary(), "feedback": self.feedback.summary(),
                "holdout_per_class_f1": {k: round(v, 6) for k, v in self.holdout.per_class_f1.items()}}


@dataclass(frozen=True)
class GatePolicy:
    """The stage's values (contract.LearningLoop, through promotion.policy_from): no defaults of its own."""

    max_class_f1_drop: float
    macro_f1_tolerance: float


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


def _same_labels(candidate: ModelScores, champion: ModelScores) -> Check:
    if set(candidate.labels) == set(champion.labels):
        return Check("labels", True, f"same {len(candidate.labels)} labels as the champion")
    added = sorted(set(candidate.labels) - set(champion.labels))
    removed = sorted(set(champion.labels) - set(candidate.labels))
    return Check("labels", False, f"label set differs from the champion's (added {added[:5]}, removed {removed[:5]})")


def _macro_f1(candidate: ModelScores, champion: ModelScores, policy: GatePolicy) -> Check:
    cand, champ = candidate.holdout.macro_f1, champion.holdout.macro_f1
    if candidate.holdout.n == 0 or math.isnan(cand):
        return Check("holdout_macro_f1", False, "no hold-out items to compare on")
    passed = cand >= champ - policy.macro_f1_tolerance
    verb = "kept" if passed else "dropped"
    return Check("holdout_macro_f1", passed,
                 f"hold-out macro-F1 {verb}: {cand:.4f} vs champion {champ:.4f} ({cand - champ:+.4f}"
                 + (f", tolerance {policy.macro_f1_tolerance:.4f})" if policy.macro_f1_tolerance else ")"))


def _feedback_accuracy(candidate: ModelScores, champion: ModelScores) -> Check:
    if candidate.feedback.n == 0:
        return Check("feedback_accuracy", False, "no held-out feedback items to compare on")
    cand, champ = candidate.feedback.accuracy, champion.feedback.accuracy
    passed = cand > champ
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


def decide(candidate: ModelScores, champion: ModelScores, policy: GatePolicy) -> GateResult:
    labels = _same_labels(candidate, champion)
    if not labels.passed:  # the other comparisons mean nothing across label sets
        return GateResult((labels,))
    return GateResult((labels, _macro_f1(candidate, champion, policy), _feedback_accuracy(candidate, champion),
                       _class_f1(candidate, champion, policy)))
