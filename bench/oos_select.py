"""How the out-of-scope recipe values were chosen: shrinkage x target flag rate, on validation data only.

Frozen-encoder embeddings (what the build computes), the dense head, novelty as model_build/novelty.py
computes it, the threshold cross-fitted on the fit split as the build does; scored on
- CLINC150 val.csv (in-scope) + oos_val.csv (out-of-scope), statistics fitted on train.csv;
- BANKING77: a 20 % split of train.csv (seed 1), statistics fitted on the other 80 %.
Never on test. Embeddings are cached in --cache.

    PYTHONPATH=functions:.:cli python bench/oos_select.py --cache /tmp/oos/select

Data: CLINC150 (Larson et al., EMNLP 2019), CC BY 3.0; BANKING77 (Casanueva et al., 2020), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from model_build.encoder import load_encoder  # noqa: E402
from model_build.novelty import calibrate_threshold, cross_fitted_scores, fit_novelty, novelty_scores  # noqa: E402
from model_build.recipe import FULL  # noqa: E402
from model_build.train import embed, train_head  # noqa: E402

DATA = Path(os.environ.get("CATEGORIZER_SHARED_DATA", ROOT.parent / "shared" / "data"))
SHRINKAGES = (0.1, 0.5, 0.9, 1.0)
FLAG_RATES = (0.01, 0.02, 0.03, 0.05)
FOLDS = 5


def knn_scores(x: np.ndarray, bank: np.ndarray, k: int = 10) -> np.ndarray:
    """Alternative: 1 - mean cosine similarity to the k nearest training texts."""
    return 1.0 - np.sort(x @ bank.T, axis=1)[:, -k:].mean(axis=1)


def relative_scores(x: np.ndarray, fit_x: np.ndarray, targets: np.ndarray, labels: int) -> np.ndarray:
    """Alternative: relative Mahalanobis (Ren et al. 2021): class distance minus the distance to one global
    Gaussian (shrinkage 0.01 for both)."""
    classes = novelty_scores(x, fit_novelty(fit_x, targets, num_labels=labels, shrinkage=0.01))
    background = novelty_scores(x, fit_novelty(fit_x, np.zeros(len(fit_x), dtype=int), num_labels=1, shrinkage=0.01))
    return classes - background


def cross_fitted(fit_x: np.ndarray, targets: np.ndarray, score) -> np.ndarray:
    """Held-out scores of an alternative, with the same folds rule as model_build/novelty.py."""
    assignment = np.random.default_rng(13).permutation(len(fit_x)) % FOLDS
    out = np.zeros(len(fit_x))
    for fold in range(FOLDS):
        held = assignment == fold
        out[held] = score(fit_x[held], fit_x[~held], targets[~held])
    return out


def auroc(in_scope: np.ndarray, out_of_scope: np.ndarray) -> float:
    ranks = np.concatenate([in_scope, out_of_scope]).argsort().argsort() + 1
    n_in, n_out = len(in_scope), len(out_of_scope)
    return float((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


def embedded(cache: Path, data_set: str, name: str, encoder) -> tuple[np.ndarray, np.ndarray]:
    path = cache / f"{data_set}_{name}.npz"
    if not path.is_file():
        with (DATA / data_set / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))[1:]
        work = cache / "encoder"
        work.mkdir(parents=True, exist_ok=True)
        vectors = embed(encoder, [r[0] for r in rows], workdir=work, max_tokens=FULL.train_max_tokens, threads=2,
                        progress=False)
        np.savez(path, embeddings=vectors, labels=np.array([r[1] for r in rows]))
    stored = np.load(path)
    return stored["embeddings"], stored["labels"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    encoder = load_encoder()
    results: dict = {"load_average": os.getloadavg(), "rows": []}
    for data_set in ("clinc150", "banking77"):
        fit_x, fit_y = embedded(args.cache, data_set, "train", encoder)
        if data_set == "clinc150":
            val_x, val_y = embedded(args.cache, data_set, "val", encoder)
            oos_x, _ = embedded(args.cache, data_set, "oos_val", encoder)
        else:
            held = np.random.default_rng(1).random(len(fit_x)) < 0.2
            val_x, val_y, fit_x, fit_y, oos_x = fit_x[held], fit_y[held], fit_x[~held], fit_y[~held], None
        labels = sorted(set(fit_y))
        targets = np.searchsorted(labels, fit_y)
        head = train_head(fit_x, targets, np.ones(len(fit_x), np.float32), num_labels=len(labels), recipe=FULL)
        with torch.no_grad():
            predicted = np.array(labels)[head(torch.from_numpy(val_x)).numpy().argmax(axis=1)]
        correct = predicted == val_y
        methods = {}
        for shrinkage in SHRINKAGES:
            stats = fit_novelty(fit_x, targets, num_labels=len(labels), shrinkage=shrinkage)
            methods[f"mahalanobis, shrinkage {shrinkage}"] = (
                cross_fitted_scores(fit_x, targets, num_labels=len(labels), shrinkage=shrinkage),
                lambda x, stats=stats: novelty_scores(x, stats))
        n = len(labels)
        methods["10 nearest training texts (cosine)"] = (
            cross_fitted(fit_x, targets, lambda x, bank, _t: knn_scores(x, bank)),
            lambda x, bank=fit_x: knn_scores(x, bank))
        methods["relative mahalanobis, shrinkage 0.01"] = (
            cross_fitted(fit_x, targets, lambda x, bank, t, n=n: relative_scores(x, bank, t, n)),
            lambda x, bank=fit_x, t=targets, n=n: relative_scores(x, bank, t, n))
        for method, (held_scores, score) in methods.items():
            val_scores = score(val_x)
            oos_scores = score(oos_x) if oos_x is not None else None
            area = None if oos_scores is None else auroc(val_scores, oos_scores)
            for rate in FLAG_RATES:
                threshold = calibrate_threshold(held_scores, flag_rate=rate)
                flagged = val_scores > threshold
                results["rows"].append({
                    "data": data_set, "method": method, "flag_rate": rate, "auroc": area,
                    "label_accuracy": float(correct.mean()), "in_scope_flagged": float(flagged.mean()),
                    "in_scope_accuracy": float((correct & ~flagged).mean()),
                    "oos_recall": None if oos_scores is None else float((oos_scores > threshold).mean())})
                print(json.dumps(results["rows"][-1]), flush=True)
    stamp = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stamp}-oos-select.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    lines = ["# Out-of-scope recipe selection on validation (bench/oos_select.py)", "",
             "Frozen encoder + dense head; CLINC150 val + oos_val (CC BY 3.0), BANKING77 20 % of train (CC BY 4.0).",
             "", "| data | novelty score | AUROC (in vs OOS) | target flag rate | in-scope flagged | in-scope accuracy "
                 "| OOS recall |", "|---|---|---|---|---|---|---|"]
    for row in results["rows"]:
        recall = "" if row["oos_recall"] is None else f"{row['oos_recall']:.0%}"
        area = "" if row["auroc"] is None else f"{row['auroc']:.4f}"
        lines.append(f"| {row['data']} | {row['method']} | {area} | {row['flag_rate']:.0%} "
                     f"| {row['in_scope_flagged']:.2%} | {row['in_scope_accuracy']:.2%} | {recall} |")
    (args.out / f"{stamp}-oos-select.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
