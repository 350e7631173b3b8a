"""Training hyperparameters, in one place: the CLI, the SageMaker entrypoint and the tests read these."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Recipe:
    # Head on the frozen encoder (the `--fast` recipe, and the start of fine-tuning).
    head_l2: float = 3e-6  # chosen on a validation split carved from train (see docs/model.md)
    head_max_iter: int = 300
    # Encoder fine-tuning: off in `fast` and `full`; `auto` (the default) tries 2 epochs when they fit its budget
    # and keeps them when they win on validation (auto.py); `--fine-tune-epochs N` forces it.
    fine_tune_epochs: int = 0
    encoder_lr: float = 1e-4
    head_lr: float = 1e-3
    batch_size: int = 32
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    label_smoothing: float = 0.0
    train_max_tokens: int = 64
    # Sparse TF-IDF head over wordpiece 1..n-grams, inside the ONNX graph: logits += weight * its logits.
    # Weight and l2 chosen by 5-fold cross-validation on train (docs/model.md); 0 turns the head off.
    sparse_head_weight: float = 0.5
    sparse_max_ngram: int = 2
    sparse_min_df: int = 2
    sparse_l2: float = 1e-6
    # Out-of-scope detection (model_build/novelty.py): Mahalanobis distance to the nearest class mean with a
    # shared covariance shrunk this far toward the identity; the threshold flags this share of in-scope texts
    # the statistics (and a fine-tuned encoder) never saw. Each rate is the largest whose in-scope accuracy on
    # CLINC150's validation split stays >= 95 %, checked on BANKING77's (docs/model.md): a fine-tuned encoder
    # separates new kinds of text better and its own errors are the novel ones, so it can flag twice as many.
    novelty_shrinkage: float = 0.9
    novelty_flag_rate: float = 0.01
    novelty_flag_rate_fine_tuned: float = 0.02
    # Serving and evaluation.
    max_tokens: int = 128
    review_precision: float = 0.95
    validation_fraction: float = 0.1
    feedback_weight: float = 3.0
    seed: int = 13

    def with_overrides(self, overrides: dict[str, Any]) -> Recipe:
        """Apply string or typed overrides (SageMaker passes hyperparameters as strings)."""
        types = {f.name: f.type for f in fields(self)}
        cast: dict[str, Any] = {}
        for name, value in overrides.items():
            if name not in types:
                continue
            kind = {"int": int, "float": float}.get(str(types[name]), str)
            cast[name] = kind(value)
        return replace(self, **cast)

    @property
    def flag_rate(self) -> float:
        """The novelty flag rate for this recipe's encoder (frozen or fine-tuned)."""
        return self.novelty_flag_rate_fine_tuned if self.fine_tune_epochs > 0 else self.novelty_flag_rate

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# `--fast`: the head on the frozen encoder only (make up, tests).
FAST = Recipe(fine_tune_epochs=0, sparse_head_weight=0.0)
# The frozen encoder's head + the in-graph sparse n-gram head (94.25 % int8 on BANKING77 test).
FULL = Recipe()
# `--recipe auto` (the default): the base whose candidates model_build/auto.py scores on a validation split of
# train: the frozen head, the n-gram head at several weights, and fine-tuning for 2 epochs when it fits the budget.
AUTO = Recipe(fine_tune_epochs=2)
RECIPES = {"fast": FAST, "full": FULL, "auto": AUTO}


class OverBudgetError(RuntimeError):
    """A build step stopped because it would not finish within the build's time budget (recipe `auto`)."""
