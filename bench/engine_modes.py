"""Batch independence vs speed: the old length-sorted chunks of 8 against one forward pass per text.

Measures, on one bundle and the BANKING77 test file: accuracy and macro-F1 of each mode, how many labels
change between classifying each text alone, the whole file, and two row orders (the chunked mode's defect),
single-text p50 and 2-thread throughput on a shuffled file, in interleaved rounds, with the load average.

    python bench/engine_modes.py --bundle artifacts/model --rounds 3

The chunked mode pads, so it needs a bundle whose attention has a mask: one built before 2026-11-29, night
(model_build/export.py now fuses the served graph's attention without one, as the engine never pads).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from categorizer.engine import Classifier, load_bundle
from categorizer.engine.classifier import create_session, length_sorted_chunks, normalize_text, run_chunk
from model_build.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT.parent / "shared" / "data" / "banking77" / "test.csv"


def chunked_probabilities(sessions, ids: list[list[int]], chunk_size: int = 8) -> np.ndarray:
    """The engine before issue 18: length-sorted padded chunks spread over single-threaded sessions."""
    chunks = length_sorted_chunks(ids, chunk_size)
    out: list[np.ndarray | None] = [None] * len(ids)
    shares = [chunks[w :: len(sessions)] for w in range(len(sessions))]

    def work(w: int):
        return [(p, row) for chunk in shares[w] for p, row in zip(chunk, run_chunk(sessions[w], ids, chunk),
                                                                   strict=True)]

    with ThreadPoolExecutor(len(sessions)) as pool:
        for pairs in pool.map(work, range(len(sessions))):
            for p, row in pairs:
                out[p] = row
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", default=str(ROOT / "artifacts" / "model"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    with TEST.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    texts, truth = [row["text"] for row in rows], [row["category"] for row in rows]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(texts))
    shuffled = [texts[i] for i in order]

    engine1 = Classifier(bundle, threads=1)
    engine2 = Classifier(bundle, threads=2)
    ids = [e.ids for e in engine1._tokenizer.encode_batch([normalize_text(t) for t in texts])]
    sessions = [create_session(bundle.file("model.onnx"), threads=1) for _ in range(2)]

    # Accuracy and independence.
    per_text = engine2.probabilities(texts)
    per_text_shuffled = engine2.probabilities(shuffled)
    alone_chunked = np.stack([run_chunk(sessions[0], ids, [i])[0] for i in range(len(ids))])
    file_chunked = chunked_probabilities(sessions, ids)
    shuffled_ids = [ids[i] for i in order]
    file_chunked_shuffled = np.empty_like(file_chunked)
    file_chunked_shuffled[order] = chunked_probabilities(sessions, shuffled_ids)
    labels = bundle.labels
    quality = {}
    for name, probs in (("per_text", per_text), ("chunked_file", file_chunked),
                        ("chunked_file_shuffled", file_chunked_shuffled)):
        metrics = evaluate(probs, truth, labels)
        quality[name] = {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
    independence = {
        "chunked_alone_vs_file_label_diffs": int((alone_chunked.argmax(1) != file_chunked.argmax(1)).sum()),
        "chunked_order_label_diffs": int((file_chunked.argmax(1) != file_chunked_shuffled.argmax(1)).sum()),
        "chunked_max_abs_prob_diff_alone_vs_file": float(np.abs(alone_chunked - file_chunked).max()),
        "per_text_max_abs_prob_diff_vs_alone": float(np.abs(per_text - alone_chunked).max()),
        "per_text_max_abs_prob_diff_two_orders": float(np.abs(per_text - per_text_shuffled[np.argsort(order)]).max()),
    }

    # Speed, interleaved rounds.
    sample = [texts[i] for i in rng.choice(len(texts), 300, replace=False)]
    p50s = {"per_text": [], "chunked": []}
    tput = {"per_text": [], "chunked": []}
    loads = []
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        times = []
        for text in sample:
            start = time.perf_counter()
            engine1.classify([text])
            times.append(time.perf_counter() - start)
        p50s["per_text"].append(statistics.median(times) * 1e3)
        # The old single-text path: a chunk of one through the padded route (same arithmetic, older Python).
        times = []
        for text in sample:
            start = time.perf_counter()
            enc = engine1._tokenizer.encode_batch([normalize_text(text)])
            run_chunk(sessions[0], [enc[0].ids], [0])
            times.append(time.perf_counter() - start)
        p50s["chunked"].append(statistics.median(times) * 1e3)
        start = time.perf_counter()
        engine2.classify(shuffled)
        tput["per_text"].append(len(shuffled) / (time.perf_counter() - start))
        start = time.perf_counter()
        sids = [e.ids for e in engine1._tokenizer.encode_batch([normalize_text(t) for t in shuffled])]
        chunked_probabilities(sessions, sids)
        tput["chunked"].append(len(shuffled) / (time.perf_counter() - start))
    loads.append(os.getloadavg()[0])
    result = {
        "bundle": str(Path(args.bundle).resolve()), "version": bundle.version, "cpus": os.cpu_count(),
        "rounds": args.rounds, "load_average_1m": loads, "quality": quality, "independence": independence,
        "single_text_p50_ms": {k: statistics.median(v) for k, v in p50s.items()},
        "single_text_p50_ms_rounds": p50s,
        "throughput_2_threads_texts_per_s": {k: statistics.median(v) for k, v in tput.items()},
        "throughput_rounds": tput,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
