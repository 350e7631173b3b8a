"""Fewer weight bytes per text: the served graph against the same graph with its weights in smaller forms.

A text alone reads the encoder's ~10.6 MB of int8 weights on every pass (bench/graph_parts.py: +0.45-0.54 ms
with the caches flushed), so fewer bytes was the lever left for issue 18's speed. The variants, each built from
the served graph's own weights:

- the 18 int8 products (attention output, FFN in and out; QAttention's QKV stays) as onnxruntime's
  `MatMulNBits`, 4-bit or 8-bit symmetric blocks of 32 along K, int8 compute (`accuracy_level=4`), the weights
  re-quantized from the dequantized int8 ones;
- the novelty output's fp32 products (the 384 x 384 whitening, then the class means) as int8 `MatMulInteger`
  with a constant activation scale, its range taken from BANKING77 training texts (never the test file).

Every session runs one thread; the texts are BANKING77 test texts, each alone; the variants are interleaved
round by round (medians of per-round medians). Accuracy is over the whole test file, each text alone.

    .venv/bin/python bench/weight_forms.py [--model artifacts/served/model] [--rounds 5]
Results: bench/results/<date>-weight-forms.md. Data: BANKING77 (Casanueva et al. 2020, CC BY 4.0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from report_file import write_report
from session_bench import alone_feeds, interleaved_p50s, read_split

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION_TEXTS = 2_000  # training texts whose embeddings give the novelty products' activation range


def _graph_maps(graph: onnx.GraphProto):
    initializers = {init.name: init for init in graph.initializer}
    producer = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return initializers, producer, consumers


def _replace_nodes(graph: onnx.GraphProto, replaced: dict[int, list[onnx.NodeProto]], dropped: set[int]) -> None:
    """Nodes in `replaced` (by id) give way to their new nodes in place; `dropped` ones go; unused weights go."""
    nodes = []
    for node in graph.node:
        if id(node) in replaced:
            nodes.extend(replaced[id(node)])
        elif id(node) not in dropped:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def block_quantized(weight: np.ndarray, bits: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """`MatMulNBits`' layout for a (K, N) weight: uint8 blobs (N, K / block, block * bits / 8) with the default
    zero point 2^(bits - 1), and one fp32 scale per block."""
    k, n = weight.shape
    blocks = -(-k // block)
    padded = np.zeros((blocks * block, n), dtype=np.float32)
    padded[:k] = weight
    grouped = padded.T.reshape(n, blocks, block)
    largest = (1 << (bits - 1)) - 1
    peak = np.abs(grouped).max(axis=2)
    scale = np.where(peak > 0, peak / largest, 1.0).astype(np.float32)
    signed = np.clip(np.round(grouped / scale[..., None]), -largest - 1, largest)
    quantized = (signed + (1 << (bits - 1))).astype(np.uint8)
    if bits == 4:
        quantized = quantized[..., 0::2] | (quantized[..., 1::2] << 4)
    return quantized, scale.reshape(-1)


def products_as_nbits(model: onnx.ModelProto, *, bits: int, block: int = 32) -> onnx.ModelProto:
    """Each weight `MatMulInteger` (with its QuantizeLinear, Cast and scale Mul) as one `MatMulNBits` on fp32 input."""
    graph = model.graph
    initializers, producer, consumers = _graph_maps(graph)
    replaced: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    for node in graph.node:
        if node.op_type != "MatMulInteger" or node.input[1] not in initializers:
            continue
        quantize = producer[node.input[0]]
        cast = consumers[node.output[0]][0]
        rescale = consumers[cast.output[0]][0]
        weight_q = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float32)
        weight_zero = numpy_helper.to_array(initializers[node.input[3]]).astype(np.float32)
        weight_scale = numpy_helper.to_array(initializers[node.input[1].replace("_quantized", "_scale")])
        packed, scales = block_quantized((weight_q - weight_zero) * weight_scale, bits, block)
        graph.initializer.extend([numpy_helper.from_array(packed, f"{node.name}_nbits"),
                                  numpy_helper.from_array(scales, f"{node.name}_nbits_scales")])
        k, n = weight_q.shape
        replaced[id(node)] = [helper.make_node(
            "MatMulNBits", [quantize.input[0], f"{node.name}_nbits", f"{node.name}_nbits_scales"], [rescale.output[0]],
            name=f"{node.name}_nbits", domain="com.microsoft", K=k, N=n, bits=bits, block_size=block,
            accuracy_level=4)]
        dropped |= {id(cast), id(rescale)}
        if len(consumers[quantize.output[0]]) == 1:
            dropped.add(id(quantize))
    _replace_nodes(graph, replaced, dropped)
    return model


def novelty_as_int8(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]) -> onnx.ModelProto:
    """The novelty products whose weight is in `ranges` as static int8: per-column symmetric weights, the input's
    uint8 scale and zero point from its (low, high) range, the way model_build/export.py freezes the encoder's."""
    graph = model.graph
    initializers, _, _ = _graph_maps(graph)
    replaced: dict[int, list[onnx.NodeProto]] = {}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in ranges:
            continue
        tag = node.input[1]
        weight = numpy_helper.to_array(initializers[tag]).astype(np.float32)
        peak = np.abs(weight).max(axis=0)
        weight_scale = np.where(peak > 0, peak / 127, 1.0).astype(np.float32)
        low, high = min(ranges[tag][0], 0.0), max(ranges[tag][1], 0.0)
        input_scale = (high - low) / 255.0
        graph.initializer.extend([
            numpy_helper.from_array(np.round(weight / weight_scale).astype(np.int8), f"{tag}_q"),
            numpy_helper.from_array(np.zeros(weight.shape[1], dtype=np.int8), f"{tag}_q_zero"),
            numpy_helper.from_array(np.array(input_scale, dtype=np.float32), f"{tag}_x_scale"),
            numpy_helper.from_array(np.array(round(-low / input_scale), dtype=np.uint8), f"{tag}_x_zero"),
            numpy_helper.from_array(weight_scale * np.float32(input_scale), f"{tag}_out_scale")])
        replaced[id(node)] = [
            helper.make_node("QuantizeLinear", [node.input[0], f"{tag}_x_scale", f"{tag}_x_zero"], [f"{tag}_xq"]),
            helper.make_node("MatMulInteger", [f"{tag}_xq", f"{tag}_q", f"{tag}_x_zero", f"{tag}_q_zero"],
                             [f"{tag}_i"]),
            helper.make_node("Cast", [f"{tag}_i"], [f"{tag}_f"], to=onnx.TensorProto.FLOAT),
            helper.make_node("Mul", [f"{tag}_f", f"{tag}_out_scale"], list(node.output))]
    _replace_nodes(graph, replaced, set())
    return model


def novelty_input_ranges(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """(min, max) of each novelty product's input over `feeds`, keyed by the product's weight name."""
    import onnxruntime as ort

    inputs = {node.input[1]: node.input[0] for node in model.graph.node
              if node.op_type == "MatMul" and node.input[1].startswith("novelty_")}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                              for name in inputs.values())
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    values = [session.run(list(inputs.values()), feed) for feed in feeds]
    return {weight: (min(float(v[i].min()) for v in values), max(float(v[i].max()) for v in values))
            for i, weight in enumerate(inputs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "served" / "model")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "functions"))
    from categorizer.engine.classifier import create_session, load_tokenizer

    tokenizer = load_tokenizer(args.model / "tokenizer.json", max_tokens=128)
    test_texts, test_labels = read_split("test.csv")
    train_texts, _ = read_split("train.csv")
    test_feeds = alone_feeds(tokenizer, test_texts)
    timed = test_feeds[::10]
    served = onnx.load(str(args.model / "model.onnx"))
    calibration = train_texts[:: max(1, len(train_texts) // CALIBRATION_TEXTS)]
    ranges = novelty_input_ranges(served, alone_feeds(tokenizer, calibration))
    whitening = {name: span for name, span in ranges.items() if name == "novelty_whitening"}
    variants: dict[str, Callable[[onnx.ModelProto], onnx.ModelProto] | None] = {
        "served (int8 per channel; novelty fp32)": None,
        "products as MatMulNBits, 4-bit, blocks of 32": lambda m: products_as_nbits(m, bits=4),
        "products as MatMulNBits, 8-bit, blocks of 32": lambda m: products_as_nbits(m, bits=8),
        "novelty whitening as static int8": lambda m: novelty_as_int8(m, whitening),
        "novelty whitening and class means as static int8": lambda m: novelty_as_int8(m, ranges),
    }
    labels = json.loads((args.model / "labels.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="weight-forms-") as tmp:
        sessions, sizes = {}, {}
        for index, (name, rewrite) in enumerate(variants.items()):
            path = args.model / "model.onnx"
            if rewrite is not None:
                path = Path(tmp) / f"variant-{index}.onnx"
                copy = onnx.ModelProto()
                copy.CopyFrom(served)
                onnx.save(rewrite(copy), str(path))
            sessions[name] = create_session(path, threads=1)
            sizes[name] = path.stat().st_size / 1e6
        outputs = {name: [session.run(None, feed) for feed in test_feeds] for name, session in sessions.items()}
        medians = interleaved_p50s(sessions, timed, args.rounds)
    base = next(iter(sessions))
    base_probs = np.concatenate([o[0] for o in outputs[base]])
    base_novelty = np.concatenate([o[1] for o in outputs[base]]).ravel()
    rows = []
    for name in sessions:
        probs = np.concatenate([o[0] for o in outputs[name]])
        novelty = np.concatenate([o[1] for o in outputs[name]]).ravel()
        accuracy = np.mean([labels[i] == label for i, label in zip(probs.argmax(axis=1), test_labels, strict=True)])
        relative = np.median(np.abs(novelty - base_novelty) / np.maximum(np.abs(base_novelty), 1e-9))
        rows.append(f"| {name} | {sizes[name]:.2f} | {statistics.median(medians[name]):.3f} | "
                    f"{statistics.median(medians[name]) / statistics.median(medians[base]):.2f}x | "
                    f"{100 * accuracy:.2f} % | {int((probs.argmax(1) != base_probs.argmax(1)).sum())} | "
                    f"{np.abs(probs - base_probs).max():.2g} | {relative:.2g} |")
    now = datetime.now(UTC)
    report = "\n".join([
        f"# The served graph's weights in smaller forms ({now:%Y-%m-%d %H:%M} UTC)", "",
        f"Command: `.venv/bin/python bench/weight_forms.py --rounds {args.rounds}`; `{args.model}`; "
        f"`session.run` p50 over {len(timed)} BANKING77 test texts (every 10th; CC BY 4.0, Casanueva et al. "
        f"2020), each alone, one thread, {args.rounds} interleaved rounds; accuracy over all {len(test_texts)}; "
        f"1-minute load average {os.getloadavg()[0]:.1f}. Novelty activation ranges from "
        f"{CALIBRATION_TEXTS:,} BANKING77 training texts.", "",
        "| graph | model MB | `session.run` p50 ms | against served | accuracy | labels changed | "
        "max probability difference | novelty, median relative difference |",
        "|---|---:|---:|---:|---:|---:|---:|---:|", *rows, ""])
    write_report("weight-forms", report, now)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
