"""One model build: read data, train (head, optionally fine-tune), export int8, evaluate, write the bundle.

Used by `categorizer model build`, the SageMaker entrypoint and the tests: same code, several callers.
With `choose_recipe` the recipe is chosen on a validation split of the training data (model_build/auto.py)
before the evaluation file is even read: the test split cannot influence the choice.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from categorizer.engine import Classifier, load_bundle
from categorizer.engine.bundle import STATIC_SCALES
from categorizer.engine.classifier import available_cpus
from model_build.auto import DEFAULT_BUDGET_SECONDS, AutoInputs, Choice, FineTuned, choose_recipe, timed_probe
from model_build.bundle import new_version, write_manifest
from model_build.data import DataError, LabelledData, read_labelled, sha256_files, stratified_indices, stratified_split
from model_build.encoder import BASE_ENCODER, base_encoder_dir
from model_build.evaluate import evaluate, write_report
from model_build.export import export_int8, freeze_activation_scales
from model_build.novelty import (
    EMBEDDING_OUTPUT,
    NOVELTY_CALIBRATION,
    NOVELTY_CALIBRATION_UNSEEN,
    NOVELTY_METHOD,
    NOVELTY_OUTPUT,
    NoveltyStats,
    add_novelty_to_graph,
    calibrate_threshold,
    cross_fitted_scores,
    fit_novelty,
    novelty_scores,
)
from model_build.recipe import Recipe
from model_build.sparse_head import add_to_graph, build_vocabulary, tfidf_matrix, train_sparse_head
from model_build.train import build_classifier, embed, fine_tune, tokenize, train_head

log = logging.getLogger(__name__)
ALTERNATIVE_FLAG_RATES = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1)
PROBE_TEXTS = 256  # the fine-tune time probe's timed pass (`_choose`)


@dataclass
class BuildRequest:
    train_files: Sequence[Path]
    bundle_dir: Path
    recipe: Recipe
    test_file: Path | None = None
    text_columns: Sequence[str] = ("text",)
    label_column: str = "category"
    extra_train: LabelledData | None = None  # e.g. user feedback, already weighted
    threads: int = field(default_factory=available_cpus)
    progress: bool = True
    # Items with this label (e.g. CLINC150's `oos`) are out-of-scope examples, not a class: kept out of the
    # classes and the novelty statistics, and used to report how many the calibrated threshold catches.
    oos_label: str | None = None
    # `--recipe auto`: `recipe` is the base whose candidates are scored (auto.py); the whole build should fit
    # the budget (a fine-tuning candidate that would not is skipped, with the reason in the report).
    choose_recipe: bool = False
    budget_seconds: float = DEFAULT_BUDGET_SECONDS


@dataclass
class BuildResult:
    bundle_dir: Path
    version: str
    metrics: dict[str, Any]
    seconds: float


def split_out_of_scope(data: LabelledData, oos_label: str | None) -> tuple[LabelledData, LabelledData]:
    """(in-scope items, items labelled `oos_label`)."""
    if not oos_label:
        return data, LabelledData([], [])
    inside = [i for i, label in enumerate(data.labels) if label != oos_label]
    outside = [i for i, label in enumerate(data.labels) if label == oos_label]
    return data.subset(inside), data.subset(outside)


def load_train(request: BuildRequest) -> tuple[LabelledData, LabelledData | None]:
    """(training data, the held-out split when there is no test file). The test file is not read here."""
    read = {"text_columns": request.text_columns, "label_column": request.label_column}
    train = read_labelled(request.train_files[0], **read)
    for extra in request.train_files[1:]:
        train = train.extend(read_labelled(extra, **read))
    held_out = None
    if not request.test_file:
        train, held_out = stratified_split(train, fraction=0.2, seed=request.recipe.seed)
    if request.extra_train is not None and len(request.extra_train):
        train = train.extend(request.extra_train)
    in_scope, _ = split_out_of_scope(train, request.oos_label)
    if len(in_scope.label_set()) < 2:
        raise DataError("training data needs at least two labels")
    return train, held_out


def load_held_out(request: BuildRequest, train: LabelledData, split: LabelledData | None) -> tuple[LabelledData, str]:
    """The evaluation data (the test file, read only now, or the split) and the hash of every file read."""
    hashed = list(request.train_files)
    held_out = split
    if request.test_file:
        held_out = read_labelled(request.test_file, text_columns=request.text_columns,
                                 label_column=request.label_column)
        hashed.append(request.test_file)
    assert held_out is not None
    unknown = sorted(set(held_out.labels) - set(train.labels) - ({request.oos_label} if request.oos_label else set()))
    if unknown:
        raise DataError(f"evaluation data has labels that training data lacks: {unknown[:10]}")
    return held_out, sha256_files(hashed)


def build(request: BuildRequest) -> BuildResult:
    started = time.monotonic()
    recipe = request.recipe
    torch.set_num_threads(request.threads)
    train, held_out_split = load_train(request)
    train, train_oos = split_out_of_scope(train, request.oos_label)
    labels = train.label_set()
    targets = np.array([labels.index(label) for label in train.labels])
    weights = np.array(train.weights, dtype=np.float32)
    log.info("training on %d items, %d labels", len(train), len(labels))

    model = build_classifier(len(labels))
    choice: Choice | None = None
    with tempfile.TemporaryDirectory(prefix="categorizer-build-") as tmp:
        workdir = Path(tmp)
        features = embed(model.sentence_encoder.encoder, train.texts, workdir=workdir,
                         max_tokens=recipe.train_max_tokens, threads=request.threads, progress=request.progress)
        if request.choose_recipe:
            choice = _choose(request, train, features, labels, spent_seconds=time.monotonic() - started)
            recipe = choice.recipe
        # Only now, with the recipe fixed, is the evaluation file read.
        held_out, data_sha = load_held_out(request, train, held_out_split)
        held_out, held_out_oos = split_out_of_scope(held_out, request.oos_label)
        log.info("evaluating on %d held-out items", len(held_out))
        embed_dir = workdir
        trial: tuple[FineTuned, np.ndarray] | None = None
        if recipe.fine_tune_epochs > 0:
            tuned = (choice.fine_tuned if choice and choice.fine_tuned
                     else fine_tune_split(train, features, targets, weights, labels=labels, recipe=recipe,
                                          progress=request.progress))
            model = tuned.model  # trained on all the data when there was too little to hold any out
            if tuned.held:
                # The trial's encoder never saw its held-out texts: their novelty calibrates the threshold.
                (workdir / "trial").mkdir()
                trial = tuned, embed(tuned.model.sentence_encoder.encoder, train.texts, workdir=workdir / "trial",
                                     max_tokens=recipe.train_max_tokens, threads=request.threads, progress=False)
                # The served model is fine-tuned again on all the data: on BANKING77 the held-out 10 % is worth
                # +0.7 points (docs/model.md).
                model = fine_tune_split(train, features, targets, weights, labels=labels, recipe=recipe,
                                        progress=request.progress, split=(range(len(train)), [])).model
            # The encoder changed: novelty statistics need the embeddings the served encoder computes.
            embed_dir = workdir / "tuned"
            embed_dir.mkdir()
            features = embed(model.sentence_encoder.encoder, train.texts, workdir=embed_dir,
                             max_tokens=recipe.train_max_tokens, threads=request.threads, progress=request.progress)
        else:
            head = train_head(features, targets, weights, num_labels=len(labels), recipe=recipe)
            model.head.load_state_dict(head.state_dict())
        novelty_stats, novelty_fields = _novelty(features, targets, num_labels=len(labels), recipe=recipe,
                                                 trial=trial)
        if len(train_oos):
            oos_features = embed(model.sentence_encoder.encoder, train_oos.texts, workdir=embed_dir,
                                 max_tokens=recipe.train_max_tokens, threads=request.threads, progress=False)
            caught = novelty_scores(oos_features, novelty_stats) > novelty_fields["threshold"]
            novelty_fields.update(oos_label=request.oos_label, oos_train_items=len(train_oos),
                                  oos_train_recall=float(caught.mean()))
        sparse_ngrams = 0
        if recipe.sparse_head_weight > 0:
            int8_model, sparse_ngrams = _with_sparse_head(model, train.texts, targets, weights,
                                                          num_labels=len(labels), recipe=recipe, workdir=workdir)
        else:
            int8_model = export_int8(model, workdir / "export", embedding_name=EMBEDDING_OUTPUT)
        int8_model = add_novelty_to_graph(int8_model, workdir / "export" / "model.int8.novelty.onnx",
                                          stats=novelty_stats)
        # Constant activation scales, so texts of one length can share a forward pass (engine/classifier.py).
        int8_model = freeze_activation_scales(int8_model, workdir / "export" / "model.int8.static.onnx",
                                              calibration_ids(train.texts, max_tokens=recipe.max_tokens))
        bundle_dir = request.bundle_dir
        bundle_dir.mkdir(parents=True, exist_ok=True)
        for stale in bundle_dir.iterdir():
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        shutil.copyfile(int8_model, bundle_dir / "model.onnx")
    shutil.copyfile(base_encoder_dir() / "tokenizer.json", bundle_dir / "tokenizer.json")
    (bundle_dir / "labels.json").write_text(json.dumps(labels, indent=1), encoding="utf-8")
    fields = {
        "version": new_version(bundle_dir / "model.onnx"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_encoder": BASE_ENCODER,
        "training_data_sha256": data_sha,
        "train_items": len(train),
        "labels": len(labels),
        "max_tokens": recipe.max_tokens,
        "recipe": recipe.as_dict(),
        "sparse_head_ngrams": sparse_ngrams,
        "activation_scales": STATIC_SCALES,
        "text_columns": list(request.text_columns),
        "label_column": request.label_column,
        "novelty": novelty_fields,
        **({"recipe_choice": choice.as_dict()} if choice else {}),
    }
    write_manifest(bundle_dir, fields)  # provisional: lets the engine load the bundle for evaluation

    classifier = Classifier(load_bundle(bundle_dir), threads=request.threads)
    probabilities, novelty = classifier.scores(held_out.texts)
    metrics = evaluate(probabilities, held_out.labels, labels, target_precision=recipe.review_precision)
    metrics["out_of_scope"] = out_of_scope_metrics(
        probabilities, novelty, held_out.labels, labels, threshold=novelty_fields["threshold"],
        oos_novelty=classifier.scores(held_out_oos.texts)[1] if len(held_out_oos) else None)
    write_report(metrics, labels, bundle_dir / "report", title=f"Model {fields['version']}",
                 extra_lines=[f"Base encoder {BASE_ENCODER}; {len(train)} training items; "
                              f"evaluated on {len(held_out)} held-out items.",
                              *_novelty_lines(novelty_fields, metrics["out_of_scope"]),
                              *(_choice_lines(choice, metrics) if choice else [])])
    summary = {k: metrics[k] for k in ("n", "accuracy", "macro_f1", "ece")}
    fields.update(metrics=summary, review_threshold=metrics["review"]["threshold"], review=metrics["review"],
                  out_of_scope=metrics["out_of_scope"])
    write_manifest(bundle_dir, fields)
    load_bundle(bundle_dir)  # the final bundle verifies
    seconds = time.monotonic() - started
    log.info("built %s in %.0fs: accuracy %.4f macro-F1 %.4f", fields["version"], seconds,
             metrics["accuracy"], metrics["macro_f1"])
    return BuildResult(bundle_dir=bundle_dir, version=fields["version"], metrics=metrics, seconds=seconds)


CALIBRATION_TEXTS = 2_000  # the static scales' sample: 4 s of calibration on BANKING77 (bench/static_scales.py)


def calibration_ids(texts: Sequence[str], *, max_tokens: int) -> list[list[int]]:
    """Token ids of every n-th training text, n = len // CALIBRATION_TEXTS (so CALIBRATION_TEXTS to twice that,
    or all of a smaller set): BANKING77's 10,003 give 2,001."""
    step = max(1, len(texts) // CALIBRATION_TEXTS)
    return tokenize(list(texts[::step]), max_tokens=max_tokens)


def _choose(request: BuildRequest, train: LabelledData, features: np.ndarray, labels: list[str], *,
            spent_seconds: float) -> Choice:
    """Score the candidates on a validation split of `train` (auto.py) with this build's own trainers."""
    base = request.recipe
    index = {label: i for i, label in enumerate(labels)}
    targets = np.array([index[label] for label in train.labels])
    weights = np.asarray(train.weights, dtype=np.float32)

    def fine_tune_candidate(keep, held, recipe: Recipe, seconds: float) -> FineTuned:
        return fine_tune_split(train, features, targets, weights, labels=labels, recipe=recipe,
                               progress=request.progress, split=(keep, held), deadline=time.monotonic() + seconds)

    per_item: list[float] = []  # measured once

    def estimate(items: int) -> float:
        """Seconds to fine-tune `items` texts for the recipe's epochs, from a timed pass over PROBE_TEXTS spread
        over the data, after an untimed pass over a quarter of them: the first pass pays for allocations and lazy
        set-up, not per text (timed alone it overestimated a CLINC150 fine-tune tenfold and kept fine-tuning out
        of budget). Each pass still pays ~0.2 s of set-up (optimizer state): over 64 texts that read as
        0.012-0.015 s per text against 0.008 s in the real run, and a CLINC150 build skipped a fine-tune that
        fits; over 256, 0.010-0.013 s (docs/model.md)."""
        if not per_item:
            model = build_classifier(len(labels))

            def one_pass(count: int) -> None:
                probe = np.linspace(0, len(train) - 1, num=count).astype(int).tolist()
                fine_tune(model, [train.texts[i] for i in probe], np.array([index[train.labels[i]] for i in probe]),
                          np.ones(len(probe), dtype=np.float32), recipe=replace(base, fine_tune_epochs=1),
                          progress=False)

            timed = min(PROBE_TEXTS, len(train))
            one_pass(max(1, timed // 4))
            per_item.append(timed_probe(lambda: one_pass(timed), items=timed))
        return per_item[0] * items * base.fine_tune_epochs

    return choose_recipe(
        AutoInputs(train=train, features=features, token_ids=tokenize(train.texts, max_tokens=base.max_tokens),
                   labels=labels),
        base=base, train_head=train_head, fine_tune=fine_tune_candidate, budget_seconds=request.budget_seconds,
        spent_seconds=spent_seconds, estimate_fine_tune_seconds=estimate)


def fine_tune_split(train: LabelledData, features: np.ndarray, targets: np.ndarray, weights: np.ndarray, *,
                    labels: Sequence[str], recipe: Recipe, progress: bool,
                    split: tuple[Sequence[int], Sequence[int]] | None = None,
                    deadline: float | None = None) -> FineTuned:
    """Fine-tune the encoder on the kept part of the validation split only (all of it when too small to split).

    The part it never sees calibrates the out-of-scope threshold: a fine-tuned encoder pulls its own training
    texts toward their class means, so a threshold calibrated on them flags three times too many new texts
    (docs/model.md). The head starts from the frozen encoder's (linear probe, then fine-tune)."""
    keep, held = split or stratified_indices(train.labels, fraction=recipe.validation_fraction, seed=recipe.seed)
    if not held:
        keep = list(range(len(train)))
    model = build_classifier(len(labels))
    head = train_head(features[keep], targets[keep], weights[keep], num_labels=len(labels), recipe=recipe)
    model.head.load_state_dict(head.state_dict())
    fine_tune(model, [train.texts[i] for i in keep], targets[keep], weights[keep], recipe=recipe, progress=progress,
              deadline=deadline)
    logits = _logits(model, [train.texts[i] for i in held], max_tokens=recipe.max_tokens) if held else np.zeros(
        (0, len(labels)), dtype=np.float32)
    return FineTuned(model=model, validation_logits=logits, keep=list(keep), held=list(held))


def _logits(model, texts: Sequence[str], *, max_tokens: int) -> np.ndarray:
    """fp32 logits of a (fine-tuned) classifier, in padded batches of 32 (scoring only: not served)."""
    ids = tokenize(texts, max_tokens=max_tokens)
    model.eval()
    model.probabilities = False
    out = []
    with torch.no_grad():
        for start in range(0, len(ids), 32):
            batch = ids[start : start + 32]
            width = max(len(row) for row in batch)
            input_ids = torch.zeros((len(batch), width), dtype=torch.long)
            for row, token_ids in enumerate(batch):
                input_ids[row, : len(token_ids)] = torch.tensor(token_ids)
            out.append(model(input_ids, (input_ids != 0).long()).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def _choice_lines(choice: Choice, metrics: dict[str, Any]) -> list[str]:
    lines = [f"Recipe chosen from the data: **{choice.chosen}** ({choice.reason}). Test figures above were "
             "computed after the choice; the test file was not read before it.", "",
             "| candidate | validation accuracy | validation macro-F1 | seconds | note |", "|---|---|---|---|---|"]
    for trial in choice.trials:
        note = "chosen" if trial.name == choice.chosen else (trial.skipped or "")
        scores = (f"{trial.accuracy:.4f} | {trial.macro_f1:.4f}" if trial.macro_f1 is not None else "- | -")
        lines.append(f"| {trial.name} | {scores} | {trial.seconds:.0f} | {note} |")
    chosen = next(t for t in choice.trials if t.name == choice.chosen)
    lines += ["", f"Validation macro-F1 {chosen.macro_f1:.4f} (fp32, {choice.validation_items} items carved from "
              f"train) beside test macro-F1 {metrics['macro_f1']:.4f} (int8, the served model)."]
    return lines


def _novelty(features: np.ndarray, targets: np.ndarray, *, num_labels: int, recipe: Recipe,
             trial: tuple[FineTuned, np.ndarray] | None = None) -> tuple[NoveltyStats, dict[str, Any]]:
    """Novelty statistics on all in-scope training embeddings, and the threshold.

    Frozen encoder: the quantile of cross-fitted scores. Fine-tuned encoder (`trial`: the fine-tune on the kept
    part of the validation split, and its embeddings of every training text): the quantile of the trial's
    novelty on the texts it never saw, scaled to the served encoder by the ratio of the two encoders' novelty
    of texts they were fine-tuned on, at the same quantile. Both encoders pull their own training texts in;
    the ratio carries the trial's calibration over to the encoder fine-tuned on everything."""
    shrinkage = recipe.novelty_shrinkage
    stats = fit_novelty(features, targets, num_labels=num_labels, shrinkage=shrinkage)
    extra: dict[str, Any] = {}
    if trial is not None:
        tuned, trial_features = trial
        keep, held = list(tuned.keep), list(tuned.held)
        trial_stats = fit_novelty(trial_features[keep], targets[keep], num_labels=num_labels, shrinkage=shrinkage)
        unseen = novelty_scores(trial_features[held], trial_stats)
        trial_seen, served_seen = novelty_scores(trial_features[keep], trial_stats), novelty_scores(features, stats)

        def threshold_at(rate: float) -> float:
            scale = calibrate_threshold(served_seen, flag_rate=rate) / calibrate_threshold(trial_seen, flag_rate=rate)
            return calibrate_threshold(unseen, flag_rate=rate) * scale

        calibration, items = NOVELTY_CALIBRATION_UNSEEN, len(unseen)
        extra["trial_threshold"] = calibrate_threshold(unseen, flag_rate=recipe.flag_rate)
    else:
        held_scores = cross_fitted_scores(features, targets, num_labels=num_labels, shrinkage=shrinkage,
                                          seed=recipe.seed)

        def threshold_at(rate: float) -> float:
            return calibrate_threshold(held_scores, flag_rate=rate)

        calibration, items = NOVELTY_CALIBRATION, len(held_scores)
    # Other operating points, for a stage that wants to flag more or less (OUT_OF_SCOPE_THRESHOLD).
    alternatives = {f"{rate:g}": threshold_at(rate) for rate in ALTERNATIVE_FLAG_RATES}
    return stats, {"method": NOVELTY_METHOD, "calibration": calibration, "threshold": threshold_at(recipe.flag_rate),
                   "shrinkage": shrinkage, "flag_rate": recipe.flag_rate, "calibration_items": items,
                   "output": NOVELTY_OUTPUT, "thresholds_by_flag_rate": alternatives, **extra}


def out_of_scope_metrics(probabilities: np.ndarray, novelty: np.ndarray, true_labels: Sequence[str],
                         labels: Sequence[str], *, threshold: float,
                         oos_novelty: np.ndarray | None = None) -> dict[str, Any]:
    """Flag rate and in-scope accuracy (a correct label and not flagged) on in-scope items; recall on
    out-of-scope items when there are any."""
    flagged = novelty > threshold
    correct = np.array([labels[i] == t for i, t in zip(probabilities.argmax(axis=1), true_labels, strict=True)])
    out: dict[str, Any] = {"threshold": threshold, "in_scope_items": len(true_labels),
                           "in_scope_flagged": float(flagged.mean()) if len(flagged) else 0.0,
                           "in_scope_accuracy": float((correct & ~flagged).mean()) if len(flagged) else 0.0}
    if oos_novelty is not None and len(oos_novelty):
        out.update(oos_items=len(oos_novelty), oos_recall=float((oos_novelty > threshold).mean()))
    return out


def _novelty_lines(fields: dict[str, Any], measured: dict[str, Any]) -> list[str]:
    lines = [f"Out-of-scope: novelty threshold {fields['threshold']:.4f} ({fields['method']}, shrinkage "
             f"{fields['shrinkage']}; {fields['calibration']}, target in-scope flag rate {fields['flag_rate']:.1%} "
             f"on {fields['calibration_items']} training items).",
             f"Held-out in-scope items flagged out-of-scope: {measured['in_scope_flagged']:.2%}; in-scope accuracy "
             f"(correct and not flagged): {measured['in_scope_accuracy']:.2%}."]
    if "oos_train_recall" in fields:
        lines.append(f"Training items labelled {fields['oos_label']!r} ({fields['oos_train_items']}, not a class): "
                     f"{fields['oos_train_recall']:.2%} flagged.")
    if "oos_recall" in measured:
        lines.append(f"Held-out out-of-scope items flagged: {measured['oos_recall']:.2%} of {measured['oos_items']}.")
    return lines


def _with_sparse_head(model, texts: Sequence[str], targets: np.ndarray, weights: np.ndarray, *, num_labels: int,
                      recipe: Recipe, workdir: Path) -> tuple[Path, int]:
    """int8 encoder exported with logits, then the TF-IDF n-gram head grafted on (kept fp32: it is small).
    Returns the model and its n-gram count (0: data too small for the head, the model is built without it)."""
    ids = tokenize(texts, max_tokens=recipe.max_tokens)
    vocabulary = build_vocabulary(ids, max_n=recipe.sparse_max_ngram, min_df=recipe.sparse_min_df)
    if not vocabulary.ngrams:
        log.warning("no n-gram occurs in %d training texts: building without the sparse head", recipe.sparse_min_df)
        return export_int8(model, workdir / "export"), 0
    head = train_sparse_head(tfidf_matrix(ids, vocabulary), targets, weights, num_labels=num_labels,
                             l2=recipe.sparse_l2)
    log.info("sparse head: %d n-grams, weight %.2f", len(vocabulary.ngrams), recipe.sparse_head_weight)
    encoder_int8 = export_int8(model, workdir / "export", output_name="logits", probabilities=False,
                               embedding_name=EMBEDDING_OUTPUT)
    grafted = add_to_graph(encoder_int8, workdir / "export" / "model.int8.sparse.onnx", vocabulary=vocabulary,
                           head=head, weight=recipe.sparse_head_weight, max_tokens=recipe.max_tokens)
    return grafted, len(vocabulary.ngrams)


def evaluate_bundle(bundle_dir: Path, data_file: Path, *, text_columns: Sequence[str] = ("text",),
                    label_column: str = "category", threads: int | None = None,
                    out_dir: Path | None = None) -> dict[str, Any]:
    """Evaluate an existing bundle on a labelled file with the serving engine."""
    classifier = Classifier(load_bundle(bundle_dir), threads=threads)
    data = read_labelled(data_file, text_columns=text_columns, label_column=label_column)
    metrics = evaluate(classifier.probabilities(data.texts), data.labels, classifier.labels,
                       target_precision=float(classifier.bundle.manifest.get("review", {}).get(
                           "target_precision", 0.95)))
    if out_dir is not None:
        write_report(metrics, classifier.labels, out_dir, title=f"Evaluation of {classifier.version}",
                     extra_lines=[f"Data: {data_file.name} ({len(data)} items)."])
    return metrics
