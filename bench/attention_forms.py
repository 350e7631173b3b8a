"""Where a layer's attention time goes, and whether another form of it is cheaper (issue 18's last 12 %).

One encoder layer's attention, taken from the served model with its real int8 weights, timed alone in a
session (one thread, interleaved rounds, medians) in three forms that give the same output:
- `QAttention` as the model has it (onnxruntime's fused int8 attention);
- decomposed: the int8 QKV product (MatMulInteger, Cast, Mul, Add), then standard ops per head batch
  (Reshape, Transpose, Split, MatMul, Softmax, MatMul, Transpose, Reshape);
- the same product, then onnxruntime's `MultiHeadAttention` on the split Q, K, V;
and the int8 QKV product alone, so the attention proper is the difference.

    .venv/bin/python bench/attention_forms.py [--model artifacts/served/model] [--lengths 12 17 30]
Results: bench/results/<date>-attention-forms.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from report_file import write_report

ROOT = Path(__file__).resolve().parents[1]
HEADS, HEAD_SIZE, HIDDEN = 12, 32, 384


def session(nodes, initializers: dict[str, np.ndarray], inputs, outputs) -> ort.InferenceSession:
    graph = helper.make_graph(nodes, "attention", inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def median_run_us(sess: ort.InferenceSession, feed: dict, calls: int) -> float:
    for _ in range(200):
        sess.run(None, feed)
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        sess.run(None, feed)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "served" / "model")
    parser.add_argument("--lengths", type=int, nargs="+", default=[12, 17, 30], help="tokens per text")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1500)
    args = parser.parse_args()
    model = onnx.load(str(args.model / "model.onnx"))
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    fused = next(node for node in model.graph.node if node.op_type == "QAttention")
    w, bias, x_scale, w_scale, _, x_zp, w_zp = (weights.get(name) for name in fused.input[1:8])
    x_in = helper.make_tensor_value_info("xq", TensorProto.UINT8, [1, None, HIDDEN])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, None, HIDDEN])
    product = [helper.make_node("MatMulInteger", ["xq", "W", "xzp", "wzp"], ["mm"]),
               helper.make_node("Cast", ["mm"], ["mmf"], to=TensorProto.FLOAT),
               helper.make_node("Mul", ["mmf", "scale"], ["mms"]),
               helper.make_node("Add", ["mms", "bias"], ["qkv"])]
    product_weights = {"W": w, "xzp": x_zp, "wzp": w_zp, "scale": (x_scale * w_scale).astype(np.float32),
                       "bias": bias}
    forms = {
        "QAttention (served)": session(
            [helper.make_node("QAttention", ["xq", "W", "bias", "xs", "ws", "mask", "xzp", "wzp"], ["out"],
                              domain="com.microsoft", num_heads=HEADS)],
            {"W": w, "bias": bias, "xs": x_scale, "ws": w_scale, "xzp": x_zp, "wzp": w_zp},
            [x_in, helper.make_tensor_value_info("mask", TensorProto.INT32, [None])], [out]),
        "decomposed (standard ops)": session([
            *product,
            helper.make_node("Reshape", ["qkv", "shape5"], ["r"]),
            helper.make_node("Transpose", ["r"], ["t"], perm=[2, 0, 3, 1, 4]),
            helper.make_node("Split", ["t", "three"], ["q5", "k5", "v5"], axis=0),
            *[helper.make_node("Squeeze", [f"{n}5", "axis0"], [n]) for n in "qkv"],
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", ["q", "kt"], ["s0"]),
            helper.make_node("Mul", ["s0", "inverse_sqrt"], ["s"]),
            helper.make_node("Softmax", ["s"], ["p"], axis=-1),
            helper.make_node("MatMul", ["p", "v"], ["o"]),
            helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", ["ot", "shape3"], ["out"])],
            {**product_weights, "shape5": np.array([0, 0, 3, HEADS, HEAD_SIZE], np.int64),
             "three": np.array([1, 1, 1], np.int64), "axis0": np.array([0], np.int64),
             "inverse_sqrt": np.array(1 / np.sqrt(HEAD_SIZE), np.float32),
             "shape3": np.array([0, 0, HIDDEN], np.int64)}, [x_in], [out]),
        "MultiHeadAttention after the product": session([
            *product,
            helper.make_node("Split", ["qkv", "sizes"], ["q", "k", "v"], axis=-1),
            helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["out"], domain="com.microsoft",
                             num_heads=HEADS)],
            {**product_weights, "sizes": np.array([HIDDEN] * 3, np.int64)}, [x_in], [out]),
        "int8 QKV product alone": session(product, product_weights, [x_in],
                                          [helper.make_tensor_value_info("qkv", TensorProto.FLOAT, [1, None, 1152])]),
    }
    rng = np.random.default_rng(7)
    rows = []
    for length in args.lengths:
        x = rng.integers(0, 256, size=(1, length, HIDDEN), dtype=np.uint8)
        feeds = {name: ({"xq": x, "mask": np.array([length], np.int32)} if name.startswith("QAttention")
                        else {"xq": x}) for name in forms}
        reference = forms["QAttention (served)"].run(None, feeds["QAttention (served)"])[0]
        times: dict[str, list[float]] = {name: [] for name in forms}
        for _ in range(args.rounds):
            for name, sess in forms.items():
                times[name].append(median_run_us(sess, feeds[name], args.calls))
        for name, sess in forms.items():
            output = sess.run(None, feeds[name])[0]
            diff = "-" if output.shape != reference.shape else f"{np.abs(output - reference).max():.2g}"
            rows.append(f"| {length} | {name} | {statistics.median(times[name]):.1f} | {diff} |")
    now = datetime.now(UTC)
    report = "\n".join([
        f"# One layer's attention, alone in a session ({now:%Y-%m-%d %H:%M} UTC)", "",
        f"Command: `.venv/bin/python bench/attention_forms.py --lengths {' '.join(map(str, args.lengths))}`; "
        f"layer 0 of `{args.model}`, one thread, median `run` time of {args.calls} calls per round, median of "
        f"{args.rounds} interleaved rounds (`run` itself is ~5 us); 1-minute load average "
        f"{os.getloadavg()[0]:.1f}.", "",
        "| tokens | form | us per run | max difference to QAttention |", "|---:|---|---:|---:|", *rows, ""])
    write_report("attention-forms", report, now)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
