"""Out-of-scope detection, measured: CLINC150 (150 intents + out-of-scope queries) and BANKING77.

Builds with the default recipe (`--recipe auto`: chosen on a validation split of train within --budget; or
`--recipe full`, the frozen encoder) into --work, then scores with the serving engine:
- CLINC150 built from train.csv alone (no out-of-scope examples), and from train.csv + oos_train.csv with
  `oos` as the designated out-of-scope label; both evaluated while building on val.csv (+ oos_val.csv: the
  review threshold is chosen there, never on test), scored on test.csv + oos_test.csv:
  in-scope accuracy = correct label and not flagged; out-of-scope recall = share of oos_test flagged.
- BANKING77 built as `categorizer model build` does (train.csv; test.csv held out), scored on test.csv:
  accuracy, and the share of test texts flagged out-of-scope.
- Single-text latency: median of per-text engine calls (one thread), the new BANKING77 bundle against
  --baseline (e.g. artifacts/served, or a bundle of the same recipe built without novelty), interleaved.

    PYTHONPATH=functions:.:cli python bench/oos_eval.py --work /tmp/oos/bench --baseline artifacts/served

Data: CLINC150 (Larson et al., EMNLP 2019), CC BY 3.0; BANKING77 (Casanueva et al., 2020), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from categorizer.engine import Classifier  # noqa: E402
from categorizer.engine.classifier import normalize_text, run_one  # noqa: E402
from model_build.auto import DEFAULT_BUDGET_SECONDS  # noqa: E402
from model_build.pipeline import BuildRequest, build  # noqa: E402
from model_build.recipe import RECIPES, Recipe  # noqa: E402

DATA = Path(os.environ.get("CATEGORIZER_SHARED_DATA", ROOT.parent / "shared" / "data"))


def read(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    return [r[0] for r in rows], [r[1] for r in rows]


def ensure_build(bundle: Path, recipe: Recipe, **kwargs: Any) -> Path:
    """Build once into `bundle` (a rerun of the script re-scores the existing builds)."""
    if not (bundle / "manifest.json").is_file():
        build(BuildRequest(bundle_dir=bundle, recipe=recipe, progress=False, **kwargs))
    return bundle


def score_in_out(classifier: Classifier, texts: list[str], labels: list[str], oos_texts: list[str]) -> dict:
    probabilities, novelty = classifier.scores(texts)
    predicted = [classifier.labels[i] for i in probabilities.argmax(axis=1)]
    correct = np.array([p == t for p, t in zip(predicted, labels, strict=True)])
    oos_flag = np.array([classifier.is_out_of_scope(float(n)) for n in novelty])
    review = (probabilities.max(axis=1) < classifier.review_threshold) | oos_flag
    out = {"model_version": classifier.version, "threshold": classifier.out_of_scope_threshold,
           "in_scope_items": len(texts), "label_accuracy": float(correct.mean()),
           "in_scope_flagged_out_of_scope": float(oos_flag.mean()),
           "in_scope_accuracy": float((correct & ~oos_flag).mean()),
           "in_scope_accuracy_needs_review": float((correct & ~review).mean())}
    if oos_texts:
        oos_probabilities, oos_novelty = classifier.scores(oos_texts)
        oos_flagged = np.array([classifier.is_out_of_scope(float(n)) for n in oos_novelty])
        oos_review = (oos_probabilities.max(axis=1) < classifier.review_threshold) | oos_flagged
        out.update(oos_items=len(oos_texts), oos_recall=float(oos_flagged.mean()),
                   oos_recall_needs_review=float(oos_review.mean()))
        # The other operating points the build calibrated (a stage picks one with OUT_OF_SCOPE_THRESHOLD).
        alternatives = classifier.bundle.manifest.get("novelty", {}).get("thresholds_by_flag_rate", {})
        out["operating_points"] = {
            rate: {"threshold": t, "in_scope_flagged": float((novelty > t).mean()),
                   "in_scope_accuracy": float((correct & (novelty <= t)).mean()),
                   "oos_recall": float((oos_novelty > t).mean())}
            for rate, t in alternatives.items()}
    return out


def latency(new: Path, baseline: Path, texts: list[str], rounds: int) -> dict:
    """Median single-text latency (ms) of each bundle's engine path (tokenize + session.run), interleaved."""
    engines = {"baseline": Classifier.from_path(baseline, threads=1), "novelty": Classifier.from_path(new, threads=1)}
    timings: dict[str, list[float]] = {name: [] for name in engines}
    for engine in engines.values():  # warm-up
        engine.classify(texts[:20])
    for _ in range(rounds):
        for text in texts:
            for name, engine in engines.items():
                ids = engine._tokenizer.encode(normalize_text(text)).ids
                started = time.perf_counter()
                run_one(engine._session, ids)
                timings[name].append((time.perf_counter() - started) * 1000)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    return {"texts": len(texts), "rounds": rounds, "median_ms": medians,
            "change": medians["novelty"] / medians["baseline"] - 1.0,
            "baseline_version": engines["baseline"].version, "novelty_version": engines["novelty"].version}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/oos/bench"))  # noqa: S108 - a scratch folder
    parser.add_argument("--baseline", type=Path, help="a bundle of the same recipe without novelty (latency)")
    parser.add_argument("--latency-texts", type=int, default=300)
    parser.add_argument("--latency-rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recipe", choices=["auto", "full"], default="auto")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_SECONDS, help="seconds, for --recipe auto")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    clinc, banking = DATA / "clinc150", DATA / "banking77"
    results: dict[str, Any] = {"recipe": args.recipe, "budget_seconds": args.budget, "load_average": os.getloadavg()}
    recipe = {"recipe": RECIPES[args.recipe], "choose_recipe": args.recipe == "auto", "budget_seconds": args.budget,
              "threads": args.threads}

    test_texts, test_labels = read(clinc / "test.csv")
    oos_test, _ = read(clinc / "oos_test.csv")
    val_texts, val_labels = read(clinc / "val.csv")
    oos_val, _ = read(clinc / "oos_val.csv")
    runs = {
        "clinc150_train_only": dict(train_files=[clinc / "train.csv"], test_file=clinc / "val.csv",
                                    label_column="intent"),
        "clinc150_with_oos_train": dict(train_files=[clinc / "train.csv", clinc / "oos_train.csv"],
                                        test_file=clinc / "val.csv", label_column="intent", oos_label="oos"),
    }
    for name, kwargs in runs.items():
        started = time.monotonic()
        bundle = ensure_build(args.work / name, **recipe, **kwargs)
        classifier = Classifier.from_path(bundle, threads=args.threads)
        results[name] = score_in_out(classifier, test_texts, test_labels, oos_test)
        # The flag rates are chosen here (validation), never on test: docs/model.md.
        results[name]["validation"] = score_in_out(classifier, val_texts, val_labels, oos_val)
        results[name]["manifest_novelty"] = classifier.bundle.manifest.get("novelty")
        results[name]["recipe_chosen"] = classifier.bundle.manifest.get("recipe_choice", {}).get("chosen")
        results[name]["build_and_score_seconds"] = round(time.monotonic() - started)
        print(name, json.dumps(results[name], indent=1), flush=True)

    b_texts, b_labels = read(banking / "test.csv")
    bundle = ensure_build(args.work / "banking77", train_files=[banking / "train.csv"],
                          test_file=banking / "test.csv", **recipe)
    classifier = Classifier.from_path(bundle, threads=args.threads)
    results["banking77"] = score_in_out(classifier, b_texts, b_labels, [])
    results["banking77"]["recipe_chosen"] = classifier.bundle.manifest.get("recipe_choice", {}).get("chosen")
    if args.baseline:
        baseline = Classifier.from_path(args.baseline, threads=args.threads)
        base_probabilities = baseline.probabilities(b_texts)
        results["banking77"]["baseline_label_accuracy"] = float(np.mean(
            [baseline.labels[i] == t for i, t in zip(base_probabilities.argmax(axis=1), b_labels, strict=True)]))
        results["latency"] = latency(bundle, args.baseline, b_texts[: args.latency_texts], args.latency_rounds)
    print("banking77", json.dumps(results["banking77"], indent=1), json.dumps(results.get("latency"), indent=1))
    results["load_average_after"] = os.getloadavg()

    stamp = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stamp}-oos-eval.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (args.out / f"{stamp}-oos-eval.md").write_text(markdown(results), encoding="utf-8")
    print(f"wrote {args.out / f'{stamp}-oos-eval.md'}")
    return 0


def markdown(r: dict[str, Any]) -> str:
    lines = ["# Out-of-scope detection (bench/oos_eval.py)", "",
             f"Recipe `{r['recipe']}` (budget {r.get('budget_seconds', 0):.0f} s); load average before "
             f"{r['load_average'][0]:.2f}, after {r['load_average_after'][0]:.2f}.",
             "Data: CLINC150 (CC BY 3.0), BANKING77 (CC BY 4.0).", "",
             "| CLINC150 build | recipe chosen | threshold | label accuracy | in-scope accuracy (correct, not flagged) "
             "| OOS recall | in-scope flagged | with needs_review: in-scope acc / OOS recall |",
             "|---|---|---|---|---|---|---|---|"]
    for name in ("clinc150_train_only", "clinc150_with_oos_train"):
        if name not in r:
            continue
        x = r[name]
        lines.append(f"| {name} | {x.get('recipe_chosen') or '-'} | {x['threshold']:.4f} | {x['label_accuracy']:.2%} "
                     f"| {x['in_scope_accuracy']:.2%} "
                     f"| {x['oos_recall']:.2%} | {x['in_scope_flagged_out_of_scope']:.2%} "
                     f"| {x['in_scope_accuracy_needs_review']:.2%} / {x['oos_recall_needs_review']:.2%} |")
    for name in ("clinc150_train_only", "clinc150_with_oos_train"):
        for split, scored in (("validation", r.get(name, {}).get("validation")), ("test", r.get(name))):
            points = (scored or {}).get("operating_points")
            if not points:
                continue
            data = "val.csv + oos_val.csv" if split == "validation" else "test.csv + oos_test.csv"
            lines += ["", f"{name}, the calibrated operating points (target in-scope flag rate) on {split} ({data}):",
                      "", "| target flag rate | threshold | in-scope flagged | in-scope accuracy | OOS recall |",
                      "|---|---|---|---|---|"]
            lines += [f"| {float(rate):.1%} | {p['threshold']:.4f} | {p['in_scope_flagged']:.2%} "
                      f"| {p['in_scope_accuracy']:.2%} | {p['oos_recall']:.2%} |" for rate, p in points.items()]
    b = r["banking77"]
    lines += ["", f"BANKING77 test ({b['in_scope_items']} texts, recipe chosen: {b.get('recipe_chosen') or '-'}): "
              f"accuracy {b['label_accuracy']:.2%}"
              + (f" (the --baseline bundle: {b['baseline_label_accuracy']:.2%})"
                 if "baseline_label_accuracy" in b else "")
              + f"; flagged out-of-scope {b['in_scope_flagged_out_of_scope']:.2%}."]
    if r.get("latency"):
        lat = r["latency"]
        lines += ["", f"Single-text latency, median of {lat['texts']} BANKING77 texts x {lat['rounds']} rounds "
                      f"(one thread, interleaved): {lat['median_ms']['baseline']:.2f} ms for the --baseline bundle, "
                      f"{lat['median_ms']['novelty']:.2f} ms for this build ({lat['change']:+.1%})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
