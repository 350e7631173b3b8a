"""Compare model bundles on the serving engine in one run: the default (full-recipe) model against the `--fast`
baseline. Single-text latency (1 thread) and cold start (fresh process -> first prediction) are measured in
interleaved rounds so that machine noise hits both alike; medians and ratios to the baseline are reported.

    .venv/bin/python bench/model_compare.py --baseline artifacts/models/<fast> --candidate artifacts/models/<full>
Results: bench/results/<date>-<time>-model-compare.md (+ .json), and printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CATEGORIZER_DATA", ROOT.parent / "shared" / "data" / "banking77"))

# Fresh interpreter: imports + bundle load (sha256 verify) + first prediction, as a Lambda cold start does.
COLD_START = """
import sys, time
started = time.perf_counter()
from categorizer.engine import Classifier
classifier = Classifier.from_path(sys.argv[1], threads=1)
classifier.classify(["I still have not received my new card"])
print(time.perf_counter() - started)
"""


def test_texts(limit: int) -> list[str]:
    with (DATA / "test.csv").open(encoding="utf-8", newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    return texts[:: max(1, len(texts) // limit)][:limit]


def cold_start_seconds(bundle: Path) -> float:
    result = subprocess.run([sys.executable, "-c", COLD_START, str(bundle)], capture_output=True, text=True,
                            check=True)
    return float(result.stdout.strip().splitlines()[-1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(bundles: dict[str, Path], *, texts: list[str], rounds: int, cold_starts: int) -> dict[str, dict]:
    from categorizer.engine import Classifier

    classifiers = {name: Classifier.from_path(path, threads=1) for name, path in bundles.items()}
    for classifier in classifiers.values():  # warm-up
        classifier.classify(texts[:20])
    latencies: dict[str, list[float]] = {name: [] for name in bundles}
    for _ in range(rounds):
        for text in texts:
            for name, classifier in classifiers.items():  # interleaved text by text
                started = time.perf_counter()
                classifier.classify([text])
                latencies[name].append((time.perf_counter() - started) * 1000)
    colds: dict[str, list[float]] = {name: [] for name in bundles}
    for _ in range(cold_starts):
        for name, path in bundles.items():
            colds[name].append(cold_start_seconds(path))
    results = {}
    for name, path in bundles.items():
        manifest = json.loads((path / "manifest.json").read_text())
        metrics = manifest.get("metrics", {})
        results[name] = {
            "bundle": str(path),
            "version": manifest.get("version"),
            "accuracy": metrics.get("accuracy"),
            "macro_f1": metrics.get("macro_f1"),
            "model_mb": round((path / "model.onnx").stat().st_size / 1e6, 2),
            "single_p50_ms": round(statistics.median(latencies[name]), 3),
            "single_p99_ms": round(percentile(latencies[name], 0.99), 3),
            "cold_start_s": round(statistics.median(colds[name]), 3),
            "samples": len(latencies[name]),
            "cold_samples": len(colds[name]),
        }
    return results


def to_markdown(results: dict[str, dict], *, baseline: str, when: str, load: str) -> str:
    base = results[baseline]
    lines = [
        f"# Model comparison, {when}",
        "",
        f"Same run, interleaved; 1 onnxruntime thread; load average at start: {load}. Ratios are against "
        f"`{baseline}`.",
        "",
        "| model | version | accuracy | macro-F1 | model.onnx MB | single p50 ms | p99 ms | p50 ratio "
        "| cold start s | cold ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['version']} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} | {row['model_mb']} "
            f"| {row['single_p50_ms']} | {row['single_p99_ms']} "
            f"| {row['single_p50_ms'] / base['single_p50_ms']:.2f}x | {row['cold_start_s']} "
            f"| {row['cold_start_s'] / base['cold_start_s']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="the --fast bundle directory")
    parser.add_argument("--candidate", type=Path, required=True, help="the full-recipe bundle directory")
    parser.add_argument("--texts", type=int, default=300, help="test texts per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold-starts", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    results = measure({"fast": args.baseline, "full": args.candidate}, texts=test_texts(args.texts),
                      rounds=args.rounds, cold_starts=args.cold_starts)
    report = to_markdown(results, baseline="fast", when=when, load=load)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{datetime.now(UTC):%Y-%m-%d-%H%M}-model-compare"
    stem.with_suffix(".md").write_text(report, encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
