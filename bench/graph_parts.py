"""What the served graph's parts after the encoder cost per text: `session.run` of the whole graph against the
same graph cut before the novelty output, before the n-gram head, and after the encoder's pooled embedding; and
the whole graph with the caches flushed before each text (its weights read from memory, not from cache).

Each cut keeps only the nodes its outputs need (the weights are the served ones); every session runs one
thread, the texts are every 10th BANKING77 test text, each alone, and the variants are interleaved round by
round (medians of per-round medians).

    .venv/bin/python bench/graph_parts.py [--model artifacts/served/model] [--rounds 5]
Results: bench/results/<date>-graph-parts.md. Data: BANKING77 (Casanueva et al. 2020, CC BY 4.0).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
from report_file import write_report
from session_bench import alone_feeds, interleaved_p50s, read_split

ROOT = Path(__file__).resolve().parents[1]
CUTS = {  # name -> the graph outputs kept
    "whole graph (probabilities + novelty)": None,
    "without the novelty output": ["probabilities"],
    "encoder + linear head (no n-gram head, no novelty)": ["logits"],
    "encoder alone (pooled embedding)": ["embedding"],
}
# The whole graph again, with the caches emptied before each text: what reading the weights from memory costs.
FLUSHED = "whole graph, caches flushed before each text (64 MB touched)"


def cut(model: onnx.ModelProto, outputs: list[str]) -> onnx.ModelProto:
    """`model` with only `outputs`, and only the nodes they need."""
    kept_model = onnx.ModelProto()
    kept_model.CopyFrom(model)
    graph = kept_model.graph
    declared = {output.name: output for output in graph.output}
    del graph.output[:]
    graph.output.extend(declared.get(name) or onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                        for name in outputs)
    needed, kept = set(outputs), []
    for node in reversed(graph.node):
        if needed & set(node.output):
            kept.append(node)
            needed |= {name for name in node.input if name}
    del graph.node[:]
    graph.node.extend(reversed(kept))
    used = needed | {name for node in kept for name in node.input}
    initializers = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    return kept_model


def novelty_alone_us(model: onnx.ModelProto, rounds: int) -> dict[str, float]:
    """The novelty nodes (embedding -> novelty) alone in a session: median us per call, warm and cache-flushed."""
    import onnxruntime as ort

    nodes = [node for node in model.graph.node if node.output[0].startswith("novelty")]
    initializers = {init.name: init for init in model.graph.initializer}
    used = [initializers[name] for name in {i for node in nodes for i in node.input} if name in initializers]
    graph = onnx.helper.make_graph(
        nodes, "novelty", [onnx.helper.make_tensor_value_info("embedding", onnx.TensorProto.FLOAT, [None, 384])],
        [onnx.helper.make_tensor_value_info("novelty", onnx.TensorProto.FLOAT, None)], used)
    alone = onnx.helper.make_model(graph, opset_imports=list(model.opset_import))
    alone.ir_version = model.ir_version
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(alone.SerializeToString(), options, providers=["CPUExecutionProvider"])
    embedding = {"embedding": np.random.default_rng(3).random((1, 384), dtype=np.float32)}
    evict = np.zeros(16 << 20, dtype=np.float32)
    result: dict[str, list[float]] = {"warm": [], "flushed": []}
    for _ in range(rounds):
        for mode in result:
            samples = []
            for _ in range(300):
                if mode == "flushed":
                    evict += 1.0
                start = time.perf_counter()
                session.run(None, embedding)
                samples.append(time.perf_counter() - start)
            result[mode].append(statistics.median(samples) * 1e6)
    kilobytes = sum(int(np.prod(init.dims)) * 4 for init in used) / 1e3
    return {**{mode: statistics.median(values) for mode, values in result.items()}, "kb": kilobytes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "served" / "model")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "functions"))
    from categorizer.engine.classifier import create_session, load_tokenizer

    model = onnx.load(str(args.model / "model.onnx"))
    tokenizer = load_tokenizer(args.model / "tokenizer.json", max_tokens=128)
    texts = read_split("test.csv")[0][::10]
    feeds = alone_feeds(tokenizer, texts)
    with tempfile.TemporaryDirectory(prefix="graph-parts-") as tmp:
        sessions = {}
        for index, (name, outputs) in enumerate(CUTS.items()):
            path = args.model / "model.onnx"
            if outputs is not None:
                path = Path(tmp) / f"cut-{index}.onnx"
                onnx.save(cut(model, outputs), str(path))
            sessions[name] = create_session(path, threads=1)
        whole_graph = next(iter(sessions))
        evict = np.zeros(16 << 20, dtype=np.float32)  # 64 MB, touched before each text in the flushed run
        medians = interleaved_p50s({**sessions, FLUSHED: sessions[whole_graph]}, feeds, args.rounds,
                                   before_each={FLUSHED: lambda: np.add(evict, 1.0, out=evict)})
    novelty = novelty_alone_us(model, args.rounds)
    whole = statistics.median(medians["whole graph (probabilities + novelty)"])
    rows = [f"| {name} | {statistics.median(values):.3f} | {statistics.median(values) - whole:+.3f} |"
            for name, values in medians.items()]
    now = datetime.now(UTC)
    report = "\n".join([
        f"# The served graph's parts, per text ({now:%Y-%m-%d %H:%M} UTC)", "",
        f"Command: `.venv/bin/python bench/graph_parts.py --rounds {args.rounds}`; `{args.model}`, "
        f"{len(texts)} BANKING77 test texts (every 10th; CC BY 4.0, Casanueva et al. 2020), each alone, one "
        f"thread; 1-minute load average {os.getloadavg()[0]:.1f}.", "",
        "| graph | `session.run` p50 ms | against the whole |", "|---|---:|---:|", *rows, "",
        f"The novelty nodes alone in a session, fed an embedding: {novelty['warm']:.1f} us warm, "
        f"{novelty['flushed']:.1f} us with the caches flushed before each call ({novelty['kb']:.0f} KB of weights).",
        ""])
    write_report("graph-parts", report, now)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
