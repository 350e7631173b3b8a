"""One model build: read data, train (head, optionally fine-tune), export int8, evaluate, write the bundle.

Used by `categorizer model build`, the SageMaker entrypoint and the tests: same code, several callers.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from categorizer.engine import Classifier, load_bundle
from categorizer.engine.classifier import available_cpus
from model_build.bundle import new_version, write_manifest
from model_build.data import DataError, LabelledData, read_labelled, sha256_files, stratified_split
from model_build.encoder import BASE_ENCODER, base_encoder_dir
from model_build.evaluate import evaluate, write_report
from model_build.export import export_int8
from model_build.novelty import (
    EMBEDDING_OUTPUT,
    NOVELTY_CALIBRATION,
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


def load_train_eval(request: BuildRequest) -> tuple[LabelledData, LabelledData, str]:
    read = {"text_columns": request.text_columns, "label_column": request.label_column}
    train = read_labelled(request.train_files[0], **read)
    for extra in request.train_files[1:]:
        train = train.extend(read_labelled(extra, **read))
    hashed = list(request.train_files)
    if request.test_file:
        held_out = read_labelled(request.test_file, **read)
        hashed.append(request.test_file)
    else:
        train, held_out = stratified_split(train, fraction=0.2, seed=request.recipe.seed)
    if request.extra_train is not None and len(request.extra_train):
        train = train.extend(request.extra_train)
    in_scope, _ = split_out_of_scope(train, request.oos_label)
    if len(in_scope.label_set()) < 2:
        raise DataError("training data needs at least two labels")
    unknown = sorted(set(held_out.labels) - set(train.labels))
    if unknown:
        raise DataError(f"evaluation data has labels that training data lacks: {unknown[:10]}")
    return train, held_out, sha256_files(hashed)


def build(request: BuildRequest) -> BuildResult:
    started = time.monotonic()
    recipe = request.recipe
    torch.set_num_threads(request.threads)
    train, held_out, data_sha = load_train_eval(request)
    train, train_oos = split_out_of_scope(train, request.oos_label)
    held_out, held_out_oos = split_out_of_scope(held_out, request.oos_label)
    labels = train.label_set()
    targets = np.array([labels.index(label) for label in train.labels])
    weights = np.array(train.weights, dtype=np.float32)
    log.info("training on %d items, %d labels; evaluating on %d", len(train), len(labels), len(held_out))

    model = build_classifier(len(labels))
    with tempfile.TemporaryDirectory(prefix="categorizer-build-") as tmp:
        workdir = Path(tmp)
        features = embed(model.sentence_encoder.encoder, train.texts, workdir=workdir,
                         max_tokens=recipe.train_max_tokens, threads=request.threads, progress=request.progress)
        head = train_head(features, targets, weights, num_labels=len(labels), recipe=recipe)
        model.head.load_state_dict(head.state_dict())
        embed_dir = workdir
        if recipe.fine_tune_epochs > 0:
            fine_tune(model, train.texts, targets, weights, recipe=recipe, progress=request.progress)
            # The encoder changed: novelty statistics need the embeddings the served encoder computes.
            embed_dir = workdir / "tuned"
            embed_dir.mkdir()
            features = embed(model.sentence_encoder.encoder, train.texts, workdir=embed_dir,
                             max_tokens=recipe.train_max_tokens, threads=request.threads, progress=request.progress)
        novelty_stats, novelty_fields = _novelty(features, targets, num_labels=len(labels), recipe=recipe)
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
        "text_columns": list(request.text_columns),
        "label_column": request.label_column,
        "novelty": novelty_fields,
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
                              *_novelty_lines(novelty_fields, metrics["out_of_scope"])])
    summary = {k: metrics[k] for k in ("n", "accuracy", "macro_f1", "ece")}
    fields.update(metrics=summary, review_threshold=metrics["review"]["threshold"], review=metrics["review"],
                  out_of_scope=metrics["out_of_scope"])
    write_manifest(bundle_dir, fields)
    load_bundle(bundle_dir)  # the final bundle verifies
    seconds = time.monotonic() - started
    log.info("built %s in %.0fs: accuracy %.4f macro-F1 %.4f", fields["version"], seconds,
             metrics["accuracy"], metrics["macro_f1"])
    return BuildResult(bundle_dir=bundle_dir, version=fields["version"], metrics=metrics, seconds=seconds)


def _novelty(features: np.ndarray, targets: np.ndarray, *, num_labels: int,
             recipe: Recipe) -> tuple[NoveltyStats, dict[str, Any]]:
    """Novelty statistics on all in-scope training embeddings; the threshold from cross-fitted scores."""
    stats = fit_novelty(features, targets, num_labels=num_labels, shrinkage=recipe.novelty_shrinkage)
    held_scores = cross_fitted_scores(features, targets, num_labels=num_labels, shrinkage=recipe.novelty_shrinkage,
                                      seed=recipe.seed)
    threshold = calibrate_threshold(held_scores, flag_rate=recipe.novelty_flag_rate)
    # Other operating points, for a stage that wants to flag more or less (OUT_OF_SCOPE_THRESHOLD).
    alternatives = {f"{rate:g}": calibrate_threshold(held_scores, flag_rate=rate) for rate in ALTERNATIVE_FLAG_RATES}
    return stats, {"method": NOVELTY_METHOD, "calibration": NOVELTY_CALIBRATION, "threshold": threshold,
                   "shrinkage": recipe.novelty_shrinkage, "flag_rate": recipe.novelty_flag_rate,
                   "calibration_items": len(held_scores), "output": NOVELTY_OUTPUT,
                   "thresholds_by_flag_rate": alternatives}


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
