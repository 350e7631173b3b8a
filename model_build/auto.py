"""Choosing the recipe from the data (`--recipe auto`): candidates scored on a validation split of train.

Users bring their own data, so the settings that won on BANKING77 are candidates, not answers. The build
carves a stratified validation split from the TRAINING data (the test file is not even read until the
choice is made: pipeline.py), trains each candidate on the rest and scores it there:

- the softmax head on the frozen encoder alone (the `fast` recipe);
- that head plus the sparse n-gram head at several weights (the `full` recipe is weight 0.5);
- encoder fine-tuning for `fine_tune_epochs` (if the recipe asks for it) plus the n-gram head at the best
  weight, only when its time, estimated from a timed probe, fits the remaining build budget.

The frozen candidates share one set of embeddings (the build computes them anyway), so they cost seconds.
The candidate with the best validation macro-F1 wins; a candidate within `TIE` of a cheaper one loses to it
(fewer moving parts, less to go wrong on data nobody has seen). Scores are fp32 (the served model is int8;
docs/model.md measures the gap). Everything tried, with its score, time and why it was chosen or skipped,
goes into the bundle's manifest and report.
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
from model_build.recipe import Recipe
from model_build.sparse_head import build_vocabulary, sparse_logits, tfidf_matrix, train_sparse_head

log = logging.getLogger(__name__)

SPARSE_WEIGHTS = (0.25, 0.5, 1.0)  # 0 is the frozen head alone
TIE = 0.001  # macro-F1: closer than this to a cheaper candidate is no win
DEFAULT_BUDGET_SECONDS = 15 * 60  # the whole build, on 2 cores (make up, the SageMaker job)


@dataclass(frozen=True)
class Trial:
    name: str
    overrides: dict[str, Any]
    accuracy: float | None = None
    macro_f1: float | None = None
    seconds: float = 0.0
    skipped: str | None = None  # why the candidate was not tried


@dataclass(frozen=True)
class Choice:
    recipe: Recipe
    chosen: str
    reason: str
    validation_items: int
    budget_seconds: float
    trials: list[Trial] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "reason": self.reason, "validation_items": self.validation_items,
                "budget_seconds": self.budget_seconds, "trials": [asdict(t) for t in self.trials]}


@dataclass(frozen=True)
class AutoInputs:
    """What the build already has: the training data, its frozen embeddings and token ids (same order)."""

    train: LabelledData
    features: np.ndarray
    token_ids: Sequence[Sequence[int]]
    labels: Sequence[str]  # the label set, in model order


# Train the frozen head: (features, targets, weights, num_labels, recipe) -> torch Linear. Fine-tune: a
# function that fine-tunes on (texts, targets, weights) and returns validation logits for `texts_val`.
HeadTrainer = Callable[..., torch.nn.Linear]
FineTuner = Callable[[Sequence[str], np.ndarray, np.ndarray, Sequence[str], Recipe], np.ndarray]


def _scores(logits: np.ndarray, truth: Sequence[str], labels: Sequence[str]) -> tuple[float, float]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    metrics = evaluate(probabilities.astype(np.float32), list(truth), list(labels))
    return float(metrics["accuracy"]), float(metrics["macro_f1"])


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
    accuracy, macro_f1 = _scores(dense, truth, labels)
    trials.append(Trial("frozen head", {"sparse_head_weight": 0.0, "fine_tune_epochs": 0}, accuracy, macro_f1,
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
        for weight in SPARSE_WEIGHTS:
            accuracy, macro_f1 = _scores(dense + weight * sparse_val, truth, labels)
            trials.append(Trial(f"frozen head + n-grams x{weight:g}", {"sparse_head_weight": weight,
                                                                       "fine_tune_epochs": 0},
                                accuracy, macro_f1, shared))
    else:
        trials.append(Trial("frozen head + n-grams", {"sparse_head_weight": SPARSE_WEIGHTS[1]},
                            skipped=f"no n-gram occurs in {base.sparse_min_df}+ training texts"))

    best_frozen = _best(trials)
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
            texts = inputs.train.texts
            logits = fine_tune([texts[i] for i in keep], targets[keep], weights[keep], [texts[i] for i in held],
                               replace(base, **overrides))
            if sparse_val is not None:
                logits = logits + overrides["sparse_head_weight"] * sparse_val
            accuracy, macro_f1 = _scores(logits, truth, labels)
            trials.append(Trial(name, overrides, accuracy, macro_f1, clock() - tick))

    best = _best(trials)
    runner_up = max((t for t in trials if t is not best and t.macro_f1 is not None),
                    key=lambda t: t.macro_f1 or 0.0, default=None)
    reason = (f"best validation macro-F1 {best.macro_f1:.4f} on {len(held)} held-out training items"
              + (f" (next: {runner_up.name} {runner_up.macro_f1:.4f}; a cheaper candidate within {TIE} wins ties)"
                 if runner_up else ""))
    log.info("recipe chosen: %s (%s)", best.name, reason)
    return Choice(recipe=replace(base, **best.overrides), chosen=best.name, reason=reason,
                  validation_items=len(held), budget_seconds=budget_seconds, trials=trials)


def _best(trials: list[Trial]) -> Trial:
    """Highest macro-F1; trials are in order of cost, so a later one must beat the best by more than TIE."""
    best: Trial | None = None
    for trial in trials:
        if trial.macro_f1 is None:
            continue
        if best is None or trial.macro_f1 > (best.macro_f1 or 0.0) + TIE:
            best = trial
    if best is None:
        raise ValueError("no candidate could be scored")
    return best


def timed_probe(step: Callable[[], None], *, items: int, clock: Callable[[], float] = time.monotonic) -> float:
    """Seconds per item of `step` (which processes `items` items once): the basis of a fine-tune estimate."""
    tick = clock()
    step()
    return (clock() - tick) / max(1, items)
