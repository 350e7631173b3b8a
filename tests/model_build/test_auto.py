"""`--recipe auto`: candidates are scored on a validation split of train, the choice and every trial recorded."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from model_build.auto import AutoInputs, FineTuned, choose_recipe
from model_build.data import LabelledData, stratified_indices
from model_build.recipe import FULL
from model_build.train import train_head

LABELS = ["card_arrival", "exchange_rate", "lost_card"]
WORDS = {"card_arrival": [11, 12, 13], "exchange_rate": [21, 22, 23], "lost_card": [31, 32, 33]}


def _inputs(*, separable_embeddings: bool, n: int = 30, seed: int = 0) -> AutoInputs:
    """Texts of three classes. The token ids always name the class (the n-gram head can learn it); the
    embeddings either do too or are noise (then only the n-grams carry the signal)."""
    rng = np.random.default_rng(seed)
    labels, ids, features = [], [], []
    for i in range(n):
        label = LABELS[i % 3]
        labels.append(label)
        ids.append([101, *rng.choice(WORDS[label], size=3).tolist(), 7, 102])
        centre = np.eye(8, dtype=np.float32)[LABELS.index(label)] if separable_embeddings else 0
        features.append(centre + rng.normal(0, 0.05 if separable_embeddings else 1.0, 8).astype(np.float32))
    train = LabelledData([f"text {i}" for i in range(n)], labels)
    return AutoInputs(train=train, features=np.array(features, dtype=np.float32), token_ids=ids, labels=LABELS)


def test_every_candidate_is_scored_on_held_out_training_items_and_recorded():
    inputs = _inputs(separable_embeddings=True)
    choice = choose_recipe(inputs, base=FULL, train_head=train_head)

    names = [t.name for t in choice.trials]
    assert names[0] == "frozen head" and len(names) == 4
    assert all(t.macro_f1 is not None and t.seconds >= 0 for t in choice.trials)
    _, held = stratified_indices(inputs.train.labels, fraction=FULL.validation_fraction, seed=FULL.seed)
    assert choice.validation_items == len(held) > 0
    # Every candidate is perfect here: nothing beats the reference (the full recipe) by more than the noise.
    assert choice.chosen == "frozen head + n-grams x0.5" and choice.recipe == FULL
    assert choice.reason.startswith("the reference (frozen head + n-grams x0.5")
    assert "correct" not in choice.as_dict()["trials"][0]


def test_a_candidate_replaces_the_reference_only_when_it_is_clearly_better():
    """With the frozen head as the reference (a base recipe without n-grams) and embeddings that are noise,
    the n-gram head is better by far more than the noise: it is chosen."""
    base = FULL.with_overrides({"sparse_head_weight": 0.0})
    choice = choose_recipe(_inputs(separable_embeddings=False, n=90), base=base, train_head=train_head)

    frozen = next(t for t in choice.trials if t.name == "frozen head")
    winner = next(t for t in choice.trials if t.name == choice.chosen)
    assert choice.recipe.sparse_head_weight > 0 and winner.accuracy > frozen.accuracy
    assert "more than the noise margin" in choice.reason


def test_fine_tuning_is_skipped_with_the_reason_when_it_does_not_fit_the_budget():
    recipe = FULL.with_overrides({"fine_tune_epochs": 2})
    choice = choose_recipe(_inputs(separable_embeddings=True), base=recipe, train_head=train_head,
                           fine_tune=lambda *args: pytest.fail("must not run"), budget_seconds=60,
                           estimate_fine_tune_seconds=lambda items: 100.0)

    skipped = choice.trials[-1]
    assert skipped.name.startswith("fine-tune 2 epochs") and skipped.macro_f1 is None
    assert "needs ~200 s" in skipped.skipped and choice.recipe.fine_tune_epochs == 0


def test_fine_tuning_runs_within_the_budget_on_the_split_only():
    seen: dict[str, int] = {}

    def fine_tune(keep, held, recipe, seconds):
        seen.update(train=len(keep), validation=len(held), epochs=recipe.fine_tune_epochs, seconds=seconds)
        # learns nothing: must not win
        return FineTuned(model="trial", validation_logits=np.zeros((len(held), len(LABELS)), dtype=np.float32),
                         keep=keep, held=held)

    inputs = _inputs(separable_embeddings=True)
    choice = choose_recipe(inputs, base=FULL.with_overrides({"fine_tune_epochs": 1}), train_head=train_head,
                           fine_tune=fine_tune, budget_seconds=600, estimate_fine_tune_seconds=lambda items: 1.0)

    assert seen["train"] + seen["validation"] == len(inputs.train) and seen["epochs"] == 1
    assert 590 < seen["seconds"] < 600  # the budget minus the final build's estimate
    assert choice.trials[-1].macro_f1 is not None and choice.recipe.fine_tune_epochs == 0
    assert choice.fine_tuned is None  # a losing trial's model is not kept


def test_a_winning_fine_tune_trial_is_the_model_the_build_serves():
    """Noise embeddings and uninformative token ids: the frozen candidates guess; a fine-tune that gets every
    validation item right wins, and its model (trained on the kept part only) is handed to the build instead
    of a second fine-tune."""
    inputs = replace(_inputs(separable_embeddings=False, n=90), token_ids=[[101, 7, 102]] * 90)
    index = {label: i for i, label in enumerate(LABELS)}

    def fine_tune(keep, held, recipe, seconds):
        logits = np.full((len(held), len(LABELS)), -5.0, dtype=np.float32)
        logits[np.arange(len(held)), [index[inputs.train.labels[i]] for i in held]] = 5.0
        return FineTuned(model="the tuned model", validation_logits=logits, keep=keep, held=held)

    base = FULL.with_overrides({"fine_tune_epochs": 2, "sparse_head_weight": 0.0})
    choice = choose_recipe(inputs, base=base, train_head=train_head, fine_tune=fine_tune, budget_seconds=600,
                           estimate_fine_tune_seconds=lambda items: 1.0)

    assert choice.recipe.fine_tune_epochs == 2 and choice.chosen.startswith("fine-tune 2 epochs")
    assert choice.fine_tuned is not None and choice.fine_tuned.model == "the tuned model"
    assert not set(choice.fine_tuned.keep) & set(choice.fine_tuned.held)
    assert "fine_tuned" not in choice.as_dict()


def test_a_trial_that_runs_past_the_budget_is_stopped_and_the_frozen_recipe_chosen():
    """The estimate is taken once; a machine that gets busier makes the trial slower than estimated. The trial
    gets the seconds left (minus the final build's estimate) and is stopped when they run out."""
    from model_build.recipe import OverBudgetError
    from model_build.train import build_classifier
    from model_build.train import fine_tune as real_fine_tune

    given: list[float] = []

    inputs = _inputs(separable_embeddings=True)

    def fine_tune(keep, held, recipe, seconds):
        given.append(seconds)
        targets = np.array([LABELS.index(inputs.train.labels[i]) for i in keep])
        real_fine_tune(build_classifier(len(LABELS)), [inputs.train.texts[i] for i in keep], targets,
                       np.ones(len(keep), dtype=np.float32), recipe=recipe, progress=False,
                       deadline=time.monotonic() - 1)  # already past: the real loop must stop at its first step
        pytest.fail("fine_tune must raise OverBudgetError past its deadline")

    choice = choose_recipe(inputs, base=FULL.with_overrides({"fine_tune_epochs": 1}),
                           train_head=train_head, fine_tune=fine_tune, budget_seconds=600,
                           estimate_fine_tune_seconds=lambda items: 1.0)

    stopped = choice.trials[-1]
    assert len(given) == 1 and stopped.macro_f1 is None and choice.recipe.fine_tune_epochs == 0
    assert stopped.skipped.startswith("stopped in epoch 1 at step 1") and "within the budget" in stopped.skipped
    assert issubclass(OverBudgetError, RuntimeError)
