"""The fused attention with and without its mask input, on a bundle built with one (before 2026-11-29, night).

The engine never pads a text (it runs each alone, or texts of one token length together), so the mask index the
fusion wired into every `QAttention` is always "all tokens". The build now fuses the served graph's attention
without a mask (model_build/export.py `fuse(attention_mask=False)`). This bench takes a bundle built with the
mask, removes it from each `QAttention` (what the build now leaves out), checks that every BANKING77 test text's
probabilities and novelty are bit-identical, and times `session.run` of both graphs, each text alone, one thread,
interleaved rounds (medians of per-round medians).

    .venv/bin/python bench/attention_mask.py --model <a bundle built with the mask> [--rounds 9]
Results: bench/results/<date>-attention-mask.md. Data: BANKING77 (Casanueva et al. 2020, CC BY 4.0).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
from report_file import write_report
from session_bench import alone_feeds, interleaved_p50s, read_split

ROOT = Path(__file__).resolve().parents[1]
MASK_INDEX = 5  # QAttention's inputs: input, weight, bias, input scale, weight scale, mask_index, ...


def without_mask(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` whose QAttention nodes take no mask index, and how many had one."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    masked = [node for node in copy.graph.node
              if node.op_type == "QAttention" and len(node.input) > MASK_INDEX and node.input[MASK_INDEX]]
    for node in masked:
        node.input[MASK_INDEX] = ""
    return copy, len(masked)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a bundle folder whose attention has a mask")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "functions"))
    from categorizer.engine.classifier import create_session, load_tokenizer

    served = onnx.load(str(args.model / "model.onnx"))
    unmasked, count = without_mask(served)
    if not count:
        raise SystemExit(f"{args.model}: its attention has no mask already (built after the change)")
    feeds = alone_feeds(load_tokenizer(args.model / "tokenizer.json", max_tokens=128), read_split("test.csv")[0])
    with tempfile.TemporaryDirectory(prefix="attention-mask-") as tmp:
        path = Path(tmp) / "unmasked.onnx"
        onnx.save(unmasked, str(path))
        sessions = {"with the mask (as built before)": create_session(args.model / "model.onnx", threads=1),
                    "without it (as built now)": create_session(path, threads=1)}
        outputs = [[session.run(None, feed) for feed in feeds] for session in sessions.values()]
        differences = [float(np.abs(a - b).max()) for pair in zip(*outputs, strict=True)
                       for a, b in zip(*pair, strict=True)]
        timed = feeds[::10]
        medians = interleaved_p50s(sessions, timed, args.rounds)
    base = statistics.median(next(iter(medians.values())))
    rows = [f"| {name} | {statistics.median(values):.3f} | {statistics.median(values) / base:.3f}x | "
            f"{' '.join(f'{v:.3f}' for v in values)} |" for name, values in medians.items()]
    faster = sum(b < a for a, b in zip(*medians.values(), strict=True))
    now = datetime.now(UTC)
    report = "\n".join([
        f"# The fused attention with and without its mask ({now:%Y-%m-%d %H:%M} UTC)", "",
        f"Command: `.venv/bin/python bench/attention_mask.py --model {args.model} --rounds {args.rounds}`; "
        f"{count} QAttention nodes; `session.run` p50 over {len(timed)} BANKING77 test texts (every 10th; CC BY "
        f"4.0, Casanueva et al. 2020), each alone, one thread, {args.rounds} interleaved rounds; 1-minute load "
        f"average {os.getloadavg()[0]:.1f}.", "",
        f"Outputs over all {len(feeds)} test texts, each alone: largest difference {max(differences):g} "
        f"(probabilities and novelty).", "",
        "| graph | p50 ms | against the masked | rounds |", "|---|---:|---:|---|", *rows, "",
        f"Without the mask faster in {faster} of {args.rounds} rounds.", ""])
    write_report("attention-mask", report, now)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
