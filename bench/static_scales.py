"""Static int8 activation scales: the lever that would let the engine batch again without mixing rows' scales.

The served graph quantizes each MatMul's input with DynamicQuantizeLinear: one scale per tensor, computed per
call, which is why the engine runs every text alone (issue 18). This replaces every DynamicQuantizeLinear with a
QuantizeLinear whose scale and zero point are constants, calibrated as DynamicQuantizeLinear would compute them
(min(0, min x), max(0, max x) over uint8) from the min and max each tensor takes over a sample of the TRAINING
texts (every `--every`-th row; nothing is chosen on the test file). The fused QAttention and
MatMulIntegerToFloat kernels stay as they are. It then measures, on the test file:

- accuracy of the dynamic and the static graph, each text alone;
- how far a text's probabilities move when it is classified in a batch (padded length-sorted and shuffled
  chunks, and chunks of texts with exactly the same length, no padding) instead of alone;
- time per text on one thread: each text alone (dynamic, static), and static in chunks.

    .venv/bin/python bench/static_scales.py --model artifacts/served/model
Results: bench/results/<date>-<HHMM>-static-scales.md (UTC), and printed.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from categorizer.engine.classifier import create_session, load_tokenizer, run_one
from model_build.export import freeze_activation_scales

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "banking77"


def _ids(tokenizer, path: Path, *, every: int = 1) -> tuple[list[list[int]], list[str]]:
    rows = list(csv.DictReader(path.open(encoding="utf-8")))[::every]
    return [tokenizer.encode(row["text"]).ids for row in rows], [row["category"] for row in rows]


def chunks_padded(id_lists: list[list[int]], order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def chunks_same_length(id_lists: list[list[int]], order: list[int], size: int) -> list[list[int]]:
    groups: dict[int, list[int]] = collections.defaultdict(list)
    for position in order:
        groups[len(id_lists[position])].append(position)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


def run_chunks(session, id_lists: list[list[int]], chunks: list[list[int]], width: int) -> np.ndarray:
    out = np.zeros((len(id_lists), width), dtype=np.float32)
    for chunk in chunks:
        longest = max(len(id_lists[p]) for p in chunk)
        input_ids = np.zeros((len(chunk), longest), dtype=np.int64)
        mask = np.zeros((len(chunk), longest), dtype=np.int64)
        for row, position in enumerate(chunk):
            input_ids[row, : len(id_lists[position])] = id_lists[position]
            mask[row, : len(id_lists[position])] = 1
        out[chunk] = session.run(["probabilities"], {"input_ids": input_ids, "attention_mask": mask})[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "served" / "model")
    parser.add_argument("--train", type=Path, default=DATA / "train.csv")
    parser.add_argument("--test", type=Path, default=DATA / "test.csv")
    parser.add_argument("--every", type=int, default=5, help="calibrate on every n-th training text")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timed", type=int, default=1000, help="test texts per timed pass")
    args = parser.parse_args()

    labels = json.loads((args.model / "labels.json").read_text(encoding="utf-8"))
    tokenizer = load_tokenizer(args.model / "tokenizer.json", max_tokens=128)
    calibration, _ = _ids(tokenizer, args.train, every=args.every)
    test_ids, test_labels = _ids(tokenizer, args.test)
    truth = np.array([labels.index(label) for label in test_labels])
    load = [os.getloadavg()[0]]

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        static_path = freeze_activation_scales(args.model / "model.onnx", Path(tmp) / "model.static.onnx",
                                               calibration)
        calibration_seconds = time.perf_counter() - started
        dynamic = create_session(args.model / "model.onnx", threads=1)
        static = create_session(static_path, threads=1)

    alone = {name: np.stack([run_one(session, ids)[0] for ids in test_ids])
             for name, session in (("dynamic", dynamic), ("static", static))}
    accuracy = {name: float((probabilities.argmax(1) == truth).mean()) for name, probabilities in alone.items()}
    shuffled = [int(i) for i in np.random.default_rng(0).permutation(len(test_ids))]
    by_length = sorted(range(len(test_ids)), key=lambda i: len(test_ids[i]))
    independence = []
    for label, chunker, order in (("padded, length-sorted", chunks_padded, by_length),
                                  ("padded, shuffled", chunks_padded, shuffled),
                                  ("same length, no padding", chunks_same_length, shuffled)):
        for size in (8, 32):
            batched = run_chunks(static, test_ids, chunker(test_ids, order, size), len(labels))
            difference = np.abs(batched - alone["static"])
            independence.append((f"{label}, chunks of {size}", float(difference.max()),
                                 int((batched.argmax(1) != alone["static"].argmax(1)).sum()),
                                 float((difference.max(axis=1) == 0).mean())))

    timed = test_ids[: args.timed]
    timed_sorted = sorted(range(len(timed)), key=lambda i: len(timed[i]))
    modes = {
        "dynamic, each text alone (the engine today)": lambda: [run_one(dynamic, ids) for ids in timed],
        "static, each text alone": lambda: [run_one(static, ids) for ids in timed],
        "static, padded length-sorted chunks of 8": lambda: run_chunks(
            static, timed, chunks_padded(timed, timed_sorted, 8), len(labels)),
        "static, same-length chunks of 16": lambda: run_chunks(
            static, timed, chunks_same_length(timed, list(range(len(timed))), 16), len(labels)),
    }
    times: dict[str, list[float]] = {name: [] for name in modes}
    for round_ in range(args.rounds):
        for name in (list(modes) if round_ % 2 == 0 else list(modes)[::-1]):
            tick = time.perf_counter()
            modes[name]()
            times[name].append((time.perf_counter() - tick) / len(timed) * 1e3)
    load.append(os.getloadavg()[0])

    reference = statistics.median(times["dynamic, each text alone (the engine today)"])
    stamp = datetime.now(UTC)
    lines = [
        f"# Static int8 activation scales, {stamp:%Y-%m-%d %H:%M} UTC",
        "",
        f"Model `{json.loads((args.model / 'manifest.json').read_text())['version']}`; calibration: "
        f"{len(calibration)} texts of `{args.train.name}` (every {args.every}th; {calibration_seconds:.0f} s), "
        f"min/max per tensor as DynamicQuantizeLinear computes them; test: `{args.test}` ({len(test_ids)} texts). "
        f"Data: BANKING77 (Casanueva et al. 2020, CC BY 4.0). Machine: {platform.machine()}, {os.cpu_count()} "
        f"shared vCPUs, Python {platform.python_version()}; 1-minute load average {load[0]:.2f} before, "
        f"{load[1]:.2f} after.",
        "",
        "| graph | accuracy, each text alone |",
        "|---|---:|",
        *(f"| {name} | {value:.4f} ({round(value * len(truth))} of {len(truth)}) |"
          for name, value in accuracy.items()),
        "",
        "Batch independence of the static graph (against each text alone):",
        "",
        "| chunks | max abs probability difference | labels changed | rows bit-identical |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {diff:.2e} | {changed} | {same:.1%} |" for name, diff, changed, same in independence),
        "",
        f"Time per text, one thread, {len(timed)} test texts per pass, median of {args.rounds} interleaved rounds:",
        "",
        "| mode | ms per text | vs the engine today |",
        "|---|---:|---:|",
        *(f"| {name} | {statistics.median(values):.3f} | {reference / statistics.median(values):.2f}x |"
          for name, values in times.items()),
    ]
    text = "\n".join(lines) + "\n"
    out = ROOT / "bench" / "results" / f"{stamp:%Y-%m-%d-%H%M}-static-scales.md"
    out.write_text(text, encoding="utf-8")
    print(text)
    print(f"written: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
