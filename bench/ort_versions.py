"""The served graph's `session.run` under other onnxruntime releases: is the pinned 1.32.0 the fastest?

Each interpreter given is a virtualenv holding one onnxruntime release (with numpy and tokenizers); each run is
a fresh process that creates the session the way the engine does (`create_session`, one thread), optionally with
onnxruntime's SkipLayerNormalization fusion left on (the engine turns it off: 1.32's kernel is slow, docs/model.md),
and times every 7th BANKING77 test text alone. The processes are interleaved round by round.

    python3 -m venv /tmp/ort-1.22.1 && /tmp/ort-1.22.1/bin/pip install onnxruntime==1.22.1 "numpy<2.3" tokenizers
    .venv/bin/python bench/ort_versions.py --python /tmp/ort-1.22.1/bin/python [--python ...] [--rounds 7]
Results: bench/results/<date>-ort-versions.md. Data: BANKING77 (Casanueva et al. 2020, CC BY 4.0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from report_file import write_report
from session_bench import alone_feeds, interleaved_p50s, read_split

ROOT = Path(__file__).resolve().parents[1]


def worker(model: Path, skip_layer_norm: bool) -> dict:
    """One process: the session as the engine makes it (or with the fusion on), p50 of every 7th test text."""
    sys.path.insert(0, str(ROOT / "functions"))
    import onnxruntime as ort

    from categorizer.engine import classifier

    if skip_layer_norm:
        classifier.DISABLED_OPTIMIZERS = ()
    session = classifier.create_session(model / "model.onnx", threads=1)
    tokenizer = classifier.load_tokenizer(model / "tokenizer.json", max_tokens=128)
    feeds = alone_feeds(tokenizer, read_split("test.csv")[0][::7])
    (p50,) = interleaved_p50s({"this release": session}, feeds, rounds=1)["this release"]
    return {"version": ort.__version__, "p50_ms": p50}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "served" / "model")
    parser.add_argument("--python", action="append", default=[], help="an interpreter with another onnxruntime")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip-layer-norm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.model, args.skip_layer_norm)))
        return 0
    runs = [(python, flag) for python in [sys.executable, *args.python] for flag in (False, True)]
    medians: dict[tuple[str, bool], list[float]] = {run: [] for run in runs}
    versions: dict[str, str] = {}
    loads = []
    for _ in range(args.rounds):
        for python, flag in runs:
            command = [python, "-B", __file__, "--worker", "--model", str(args.model)]
            out = subprocess.run(command + (["--skip-layer-norm"] if flag else []), check=True,
                                 capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            versions[python] = result["version"]
            medians[(python, flag)].append(result["p50_ms"])
        loads.append(os.getloadavg()[0])
    pinned = statistics.median(medians[(sys.executable, False)])
    rows = [f"| {versions[python]} | {'on' if flag else 'off (as the engine)'} | {statistics.median(values):.3f} | "
            f"{statistics.median(values) / pinned:.2f}x | {' '.join(f'{v:.3f}' for v in values)} |"
            for (python, flag), values in medians.items()]
    now = datetime.now(UTC)
    report = "\n".join([
        f"# onnxruntime releases on the served graph ({now:%Y-%m-%d %H:%M} UTC)", "",
        f"Command: `.venv/bin/python bench/ort_versions.py {' '.join(f'--python {p}' for p in args.python)} "
        f"--rounds {args.rounds}`; `{args.model}`; `session.run` p50 over every 7th BANKING77 test text (CC BY "
        f"4.0, Casanueva et al. 2020), each alone, one thread, a fresh process per run, {args.rounds} interleaved "
        f"rounds; 1-minute load average {min(loads):.1f}-{max(loads):.1f}.", "",
        "| onnxruntime | SkipLayerNormalization fusion | p50 ms | against the pinned release, fusion off | rounds |",
        "|---|---|---:|---:|---|", *rows, ""])
    write_report("ort-versions", report, now)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
