"""Choosing the recipe from the data (`--recipe auto`): candidates scored on a validation split of train.

Users bring their own data, so the settings that won on BANKING77 are candidates, not answers. The build
carves a stratified validation split from the TRAINING data (the test file is not even read until the
choice is made: pipeline.py), trains each candidate on the rest and scores it there:

- the softmax head on the frozen encoder alone (the `fast` recipe);
- that head plus the sparse n-gram head at several weights (the `full` recipe is weight 0.5);
- encoder fine-tuning for `fine_tune_epochs` (if the recipe asks for it) plus the n-gram head at the best
  weight, only when its time (trial and final build), estimated from a timed probe, fits the remaining build
  budget. Should the trial win, the build keeps it (pipeline.py): the validation split it never saw
  calibrates the out-of-scope threshold of the model then fine-tuned on all the data.

The frozen candidates share one set of embeddings (the build computes them anyway), so they cost seconds.

The base recipe's own configuration (the `full` recipe: n-gram head at 0.5, chosen by cross-validation and
measured on two data sets) is the reference. Another candidate replaces it only when its validation accuracy
is higher by more than the noise of the comparison: one standard error of the paired per-item difference
(and at least `TIE`). A validation split of ~1,000 items cannot tell 0.3 points apart, and a choice made on
noise is worse on unseen data than the reference (measured on BANKING77: docs/model.md, "Recipe chosen from
the data"). Scores are fp32 (the served model is int8). Everything tried, with its scores, time and why it
was chosen or skipped, goes into the bundle's manifest and report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from model_build.data import LabelledData, stratified_indices
from model_build.evaluate import evaluate
from model_build.recipe import OverBudgetError, Recipe
from model_build.sparse_head import build_vocabulary, sparse_logits, tfidf_matrix, train_sparse_head

log = logging.getLogger(__name__)

SPARSE_WEIGHTS = (0.25, 0.5, 1.0)  # 0 is the frozen head alone
TIE = 0.001  # accuracy: a smaller margin over the reference is never a win
DEFAULT_BUDGET_SECONDS = 15 * 60  # the whole build, on 2 cores (make up, the SageMaker job)


@dataclass(frozen=True)
class Trial:
    name: str
    overrides: dict[str, Any]
    accuracy: float | None = None
    macro_f1: float | None = None
    seconds: float = 0.0
    skipped: str | None = None  # why the candidate was not tried (or stopped)
    correct: np.ndarray | None = field(default=None, repr=False, compare=False)  # per validation item

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "correct"}


@dataclass(frozen=True)
class Choice:
    recipe: Recipe
    chosen: str
    reason: str
    validation_items: int
    budget_seconds: float
    trials: list[Trial] = field(default_factory=list)
    # The winning fine-tune trial: its held-out split calibrates the final model's out-of-scope threshold.
    fine_tuned: FineTuned | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "reason": self.reason, "validation_items": self.validation_items,
                "budget_seconds": self.budget_seconds, "trials": [t.as_dict() for t in self.trials]}


@dataclass(frozen=True)
class AutoInputs:
    """What the build already has: the training data, its frozen embeddings and token ids (same order)."""

    train: LabelledData
    features: np.ndarray
    token_ids: Sequence[Sequence[int]]
    labels: Sequence[str]  # the label set, in model order


@dataclass(frozen=True)
class FineTuned:
    """A fine-tuned model (opaque here) and its fp32 logits on the validation items it did not see."""

    model: Any
    validation_logits: np.ndarray
    keep: Sequence[int]  # positions in the training data it was fine-tuned on
    held: Sequence[int]  # positions it never saw


# Train the frozen head: (features, targets, weights, num_labels, recipe) -> torch Linear.
HeadTrainer = Callable[..., torch.nn.Linear]
# (kept positions, held-out positions, recipe, seconds it may take) -> FineTuned; raises OverBudgetError when it
# runs out of those seconds.
FineTuner = Callable[[Sequence[int], Sequence[int], Recipe, float], FineTuned]


def _scored(name: str, overrides: dict[str, Any], logits: np.ndarray, truth: Sequence[str],
            labels: Sequence[str], seconds: float) -> Trial:
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    metrics = evaluate(probabilities.astype(np.float32), list(truth), list(labels))
    correct = np.array([labels[i] == t for i, t in zip(logits.argmax(axis=1), truth, strict=True)])
    return Trial(name, overrides, float(metrics["accuracy"]), float(metrics["macro_f1"]), seconds, correct=correct)


def choose_recipe(inputs: AutoInputs, *, base: Recipe, train_head: HeadTrainer, fine_tune: FineTuner | None = None,
                  budget_seconds: float = DEFAULT_BUDGET_SECONDS, spent_seconds: float = 0.0,
                  estimate_fine_tune_seconds: Callable[[int], float] | None = None,
                  clock: Callable[[], float] = time.monotonic) -> Choice:
    """Score the candidates on a validation split of `inputs.train`; return the winner as a recipe."""
    started = clock()
    labels = list(inputs.labels)
    keep, held = stratified_indices(inputs.train.labels, fraction=base.validation_fraction, seed=base.seed)
    if not held:
        return Choice(recipe=base, chosen="as given", reason="too little data to hold any out for validation",
                      validation_items=0, budget_seconds=budget_seconds)
    index = {label: i for i, label in enumerate(labels)}
    targets = np.array([index[label] for label in inputs.train.labels])
    weights = np.asarray(inputs.train.weights, dtype=np.float32)
    truth = [inputs.train.labels[i] for i in held]
    trials: list[Trial] = []

    tick = clock()
    head = train_head(inputs.features[keep], targets[keep], weights[keep], num_labels=len(labels), recipe=base)
    with torch.no_grad():
        dense = head(torch.from_numpy(inputs.features[held])).numpy()
    trials.append(_scored("frozen head", {"sparse_head_weight": 0.0, "fine_tune_epochs": 0}, dense, truth, labels,
                          clock() - tick))

    tick = clock()
    train_ids = [inputs.token_ids[i] for i in keep]
    vocabulary = build_vocabulary(train_ids, max_n=base.sparse_max_ngram, min_df=base.sparse_min_df)
    sparse_val = None
    if vocabulary.ngrams:
        sparse = train_sparse_head(tfidf_matrix(train_ids, vocabulary), targets[keep], weights[keep],
                                   num_labels=len(labels), l2=base.sparse_l2)
        sparse_val = sparse_logits(tfidf_matrix([inputs.token_ids[i] for i in held], vocabulary), sparse)
        shared = (clock() - tick) / len(SPARSE_WEIGHTS)
        for weight in sorted({*SPARSE_WEIGHTS, base.sparse_head_weight} - {0.0}):
            trials.append(_scored(f"frozen head + n-grams x{weight:g}",
                                  {"sparse_head_weight": weight, "fine_tune_epochs": 0},
                                  dense + weight * sparse_val, truth, labels, shared))
    else:
        trials.append(Trial("frozen head + n-grams", {"sparse_head_weight": SPARSE_WEIGHTS[1]},
                            skipped=f"no n-gram occurs in {base.sparse_min_df}+ training texts"))

    reference = _reference(trials, base)
    best_frozen = _best(trials, reference)
    tuned: FineTuned | None = None
    if base.fine_tune_epochs > 0:
        name = f"fine-tune {base.fine_tune_epochs} epochs + n-grams x{best_frozen.overrides['sparse_head_weight']:g}"
        overrides = {"fine_tune_epochs": base.fine_tune_epochs,
                     "sparse_head_weight": best_frozen.overrides["sparse_head_weight"]}
        remaining = budget_seconds - spent_seconds - (clock() - started)
        # Trying it costs one fine-tune on the split; winning costs another on all the data.
        needed = (estimate_fine_tune_seconds(len(keep)) + estimate_fine_tune_seconds(len(targets))
                  if estimate_fine_tune_seconds else float("inf"))
        if fine_tune is None or needed > remaining:
            trials.append(Trial(name, overrides, skipped=f"needs ~{needed:.0f} s (trial + final build), "
                                                         f"{max(0.0, remaining):.0f} s of the budget left"))
        else:
            tick = clock()
            # The trial must leave time for the final build on all the data, should it win.
            allowed = remaining - estimate_fine_tune_seconds(len(targets))
            try:
                tuned = fine_tune(keep, held, replace(base, **overrides), allowed)
            except OverBudgetError as stopped:
                trials.append(Trial(name, overrides, seconds=clock() - tick, skipped=(
                    f"{stopped} after {clock() - tick:.0f} s: it would not have finished within the budget "
                    f"(estimated ~{needed:.0f} s for trial and final build at the start; the machine is slower now)")))
            else:
                logits = tuned.validation_logits
                if sparse_val is not None:
                    logits = logits + overrides["sparse_head_weight"] * sparse_val
                trials.append(_scored(name, overrides, logits, truth, labels, clock() - tick))

    best = _best(trials, reference)
    if best is reference:
        top = max((t for t in trials if t.accuracy is not None), key=lambda t: t.accuracy or 0.0)
        reason = (f"the reference ({reference.name}, validation accuracy {reference.accuracy:.4f} on {len(held)} "
                  "held-out training items) was not beaten by more than the noise"
                  + (f" (best other: {top.name} {top.accuracy:.4f}, within {_margin(top, reference):.4f})"
                     if top is not reference else ""))
    else:
        reason = (f"validation accuracy {best.accuracy:.4f} against the reference's {reference.accuracy:.4f} "
                  f"({reference.name}) on {len(held)} held-out training items: more than the noise margin "
                  f"{_margin(best, reference):.4f}")
    log.info("recipe chosen: %s (%s)", best.name, reason)
    return Choice(recipe=replace(base, **best.overrides), chosen=best.name, reason=reason,
                  validation_items=len(held), budget_seconds=budget_seconds, trials=trials,
                  fine_tuned=tuned if best.overrides.get("fine_tune_epochs", 0) > 0 else None)


def _reference(trials: list[Trial], base: Recipe) -> Trial:
    """The base recipe's own frozen configuration, or the frozen head when there is no n-gram head."""
    scored = [t for t in trials if t.correct is not None]
    for trial in scored:
        if trial.overrides.get("sparse_head_weight") == base.sparse_head_weight:
            return trial
    return scored[0]


def _margin(challenger: Trial, reference: Trial) -> float:
    """One standard error of the paired difference in accuracy (at least TIE)."""
    difference = challenger.correct.astype(float) - reference.correct.astype(float)  # type: ignore[union-attr]
    return max(TIE, float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else 1.0)


def _best(trials: list[Trial], reference: Trial) -> Trial:
    """The reference, unless a candidate's accuracy beats it by more than the noise; then the best such one."""
    winners = [t for t in trials if t.correct is not None and t is not reference
               and (t.accuracy or 0.0) - (reference.accuracy or 0.0) > _margin(t, reference)]
    return max(winners, key=lambda t: t.accuracy or 0.0, default=reference)


def timed_probe(step: Callable[[], None], *, items: int, clock: Callable[[], float] = time.monotonic) -> float:
    """Seconds per item of `step` (which processes `items` items once): the basis of a fine-tune estimate."""
    tick = clock()
    step()
    return (clock() - tick) / max(1, items)
