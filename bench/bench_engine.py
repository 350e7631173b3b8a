"""Engine benchmark: this engine (int8 ONNX) vs TF-IDF + RandomForest vs sentence-transformers on PyTorch.

One run, BANKING77 test set, every system measured in fresh worker processes, rounds interleaved so that
machine noise hits all systems alike. Reported: accuracy, macro-F1, single-text latency p50/p99 (1 thread),
batch throughput (2 threads), cold start (new process -> first prediction), peak RSS, deploy size.

    .venv/bin/categorizer bench            # or: .venv/bin/python bench/bench_engine.py
Each measurement is bench/engine_worker.py in a fresh process.
Results: bench/results/<date>-engine.md (+ .json), and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from engine_worker import DATA, ROOT, SYSTEMS, WORK, read_csv, st_path  # bench/ is on sys.path (script or CLI)

WORKER = Path(__file__).resolve().parent / "engine_worker.py"
# The hardware floor for MiniLM-L6 on BANKING77's mean 15 tokens (../shared/notes/onnx-findings.md): 323 MFLOP
# per text at this CPU's 470 GOP/s int8 (VNNI) per core, i.e. ~0.7 ms per text on one core, two on two.
FLOOR_MS_PER_TEXT = 0.7
FLOOR_TEXTS_PER_S_2_THREADS = 2 * 1000 / FLOOR_MS_PER_TEXT
# Issue 18's targets for this engine.
TARGET_P50_MS, TARGET_SPEEDUP_VS_TORCH, TARGET_TEXTS_PER_S, TARGET_COLD_START_S = 1.5, 9.0, 1500, 0.3
RUNTIME_PACKAGES = {
    "onnx_int8": ["onnxruntime", "tokenizers", "numpy"],
    "tfidf_rf": ["scikit-learn", "scipy", "numpy", "joblib", "threadpoolctl"],
    "torch_st": ["torch", "sentence-transformers", "transformers", "tokenizers", "numpy", "safetensors",
                 "huggingface-hub", "scikit-learn", "scipy", "tqdm", "regex", "pyyaml", "filelock", "fsspec"],
}


# ---------------------------------------------------------------- parent

def prepare_peers(model: Path) -> None:
    """Train the peers once (cached): TF-IDF + RF, and the same softmax head on sentence-transformers."""
    WORK.mkdir(parents=True, exist_ok=True)
    train_texts, train_labels = read_csv(DATA / "train.csv")
    if not (WORK / "tfidf_rf.pkl").exists():
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import Pipeline

        pipeline = Pipeline([("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
                             ("rf", RandomForestClassifier(n_estimators=300, n_jobs=2, random_state=13))])
        pipeline.fit(train_texts, train_labels)
        with (WORK / "tfidf_rf.pkl").open("wb") as handle:
            pickle.dump(pipeline, handle)
    if not (WORK / "st_head.npz").exists():
        import numpy as np
        import torch
        from sentence_transformers import SentenceTransformer

        from model_build.recipe import FAST
        from model_build.train import train_head

        torch.set_num_threads(2)
        encoder = SentenceTransformer(str(st_path()), device="cpu")
        features = encoder.encode(train_texts, batch_size=64, normalize_embeddings=True)
        label_set = sorted(set(train_labels))
        targets = np.array([label_set.index(x) for x in train_labels])
        head = train_head(features.astype(np.float32), targets, np.ones(len(targets), dtype=np.float32),
                          num_labels=len(label_set), recipe=FAST)
        np.savez(WORK / "st_head.npz", weight=head.weight.detach().numpy(), bias=head.bias.detach().numpy(),
                 labels=np.array(label_set))


def run_worker(name: str, mode: str, model: Path) -> dict:
    """One measurement in a fresh process (bench/engine_worker.py); its cold start is timed from here."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), os.environ.get("PYTHONPATH", "")])}
    started = time.time()
    result = subprocess.run(
        [sys.executable, str(WORKER), "--worker", name, "--mode", mode, "--model", str(model),
         "--started", str(started)],
        capture_output=True, text=True, check=False, env=env,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{name}/{mode} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def deploy_size_mb(name: str, model: Path) -> float:
    total = 0
    for package in RUNTIME_PACKAGES[name]:
        dist = metadata.distribution(package)
        total += sum((f.size or 0) for f in dist.files or [])
    if name == "onnx_int8":
        total += sum(p.stat().st_size for p in model.resolve().rglob("*") if p.is_file())
    elif name == "tfidf_rf":
        total += (WORK / "tfidf_rf.pkl").stat().st_size
    else:
        total += sum(p.stat().st_size for p in st_path().rglob("*") if p.is_file())
        total += (WORK / "st_head.npz").stat().st_size
    return total / 1e6


def main(model: Path, quick: bool = False) -> int:
    model = Path(model)
    prepare_peers(model)
    rounds = {"cold": 2 if quick else 5, "latency": 1 if quick else 3, "batch": 1 if quick else 3}
    samples: dict[str, dict[str, list[float]]] = {s: {} for s in SYSTEMS}
    loads = [os.getloadavg()[0]]
    for mode, count in rounds.items():
        for round_index in range(count):
            for name in SYSTEMS if round_index % 2 == 0 else reversed(SYSTEMS):
                for key, value in run_worker(name, mode, model).items():
                    samples[name].setdefault(key, []).append(value)
                loads.append(os.getloadavg()[0])
                print(f"  {mode} round {round_index + 1}/{count}: {name} done", file=sys.stderr)
    result = {name: {k: statistics.median(v) for k, v in samples[name].items()} for name in SYSTEMS}
    for name in SYSTEMS:
        result[name]["deploy_mb"] = deploy_size_mb(name, model)
    ours, torch_peer = result["onnx_int8"], result["torch_st"]
    ratios = {"single_p50_speedup_vs_torch": torch_peer["p50_ms"] / ours["p50_ms"],
              "cold_start_speedup_vs_torch": torch_peer["cold_start_s"] / ours["cold_start_s"],
              "throughput_ratio_vs_torch": ours["texts_per_s"] / torch_peer["texts_per_s"]}
    report = render(result, ratios, model, rounds, loads)
    print(report)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H%M")
    out = ROOT / "bench" / "results" / f"{stamp}-engine.md"
    out.write_text(report, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"systems": result, "ratios": ratios, "load_average": loads,
                                                    "machine": machine()}, indent=1), encoding="utf-8")
    print(f"written {out}")
    return 0


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    return f"{cpu}, {os.cpu_count()} vCPUs, {platform.machine()}, Python {platform.python_version()}"


def render(result: dict, ratios: dict, model: Path, rounds: dict, loads: list[float]) -> str:
    manifest = json.loads((model / "manifest.json").read_text())
    names = {"onnx_int8": "this engine (MiniLM-L6 int8 ONNX)", "tfidf_rf": "TF-IDF + RandomForest",
             "torch_st": "sentence-transformers MiniLM-L6 (PyTorch) + same head"}
    lines = [
        f"# Engine benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"BANKING77 test (3,080 texts; CC BY 4.0, Casanueva et al. 2020). Model {manifest['version']}. "
        f"Machine: {machine()}; shared and noisy: 1-minute load average {min(loads):.1f}-{max(loads):.1f} "
        f"during the run; medians over interleaved rounds {rounds}.",
        "",
        "| system | accuracy | macro-F1 | single p50 ms (1 thr) | single p99 ms | batch texts/s (2 thr) "
        "| cold start s | peak RSS MB | deploy MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in result.items():
        lines.append(f"| {names[key]} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['texts_per_s']:.0f} | {r['cold_start_s']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['deploy_mb']:.0f} |")
    lines += ["", "Ratios against the PyTorch peer measured in the same run:", ""]
    lines += [f"- {k.replace('_', ' ')}: {v:.1f}x" for k, v in ratios.items()]
    ours = result["onnx_int8"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines += ["", f"Against the hardware floor ({FLOOR_MS_PER_TEXT} ms per text on one core, "
              f"{FLOOR_TEXTS_PER_S_2_THREADS:.0f} texts/s on two; ../shared/notes/onnx-findings.md) and issue 18's "
              "targets:", "",
              "| figure | this engine | floor | ratio to floor | target | |", "|---|---:|---:|---:|---:|---|",
              f"| single p50 ms | {ours['p50_ms']:.2f} | {FLOOR_MS_PER_TEXT} | "
              f"{ours['p50_ms'] / FLOOR_MS_PER_TEXT:.1f}x | <= {TARGET_P50_MS} | "
              f"{verdict(ours['p50_ms'] <= TARGET_P50_MS)} |",
              f"| speed-up vs PyTorch p50 | {ratios['single_p50_speedup_vs_torch']:.1f}x | | | "
              f">= {TARGET_SPEEDUP_VS_TORCH:.0f}x | "
              f"{verdict(ratios['single_p50_speedup_vs_torch'] >= TARGET_SPEEDUP_VS_TORCH)} |",
              f"| texts/s, 2 threads, shuffled | {ours['texts_per_s']:.0f} | {FLOOR_TEXTS_PER_S_2_THREADS:.0f} | "
              f"{FLOOR_TEXTS_PER_S_2_THREADS / ours['texts_per_s']:.1f}x | >= {TARGET_TEXTS_PER_S} | "
              f"{verdict(ours['texts_per_s'] >= TARGET_TEXTS_PER_S)} |",
              f"| cold start s | {ours['cold_start_s']:.2f} | | | <= {TARGET_COLD_START_S} | "
              f"{verdict(ours['cold_start_s'] <= TARGET_COLD_START_S)} |"]
    lines += ["", "Cold start: a new Python process from launch to its first prediction (imports + model load), "
              "warm page cache. Deploy size: the runtime packages' installed files plus the model, unzipped.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "model")
    parser.add_argument("--quick", action="store_true")
    cli = parser.parse_args()
    sys.exit(main(cli.model, cli.quick))
