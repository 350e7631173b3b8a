"""Interleaved A/B of the API handler across git revisions, in one process: what each change to the API layer
gains, measured so that machine noise hits every variant alike.

Each `label=rev` is exported with `git archive` into a temporary folder and imported as its own copy of the
`categorizer` package (third-party libraries are shared), wrapped in the same Lambda handler the function runs,
with the engine answer canned (computed once beforehand): what is timed is the API layer alone (Powertools,
Mangum, FastAPI, token verification against moto Cognito's JWKS, the route). Calls alternate between the
variants (order reversed every other call and round); each round's median per variant is compared with the
first variant's in the same round, and the median of those differences is reported.

`--after-engine` runs one real engine call (untimed) before every timed call, as in Lambda, where the API
layer runs right after the engine has swept the CPU caches: that is the figure that adds to the engine's time.

    .venv/bin/python bench/api_ab.py --model artifacts/served/model main=main new=HEAD [--after-engine]
Results: printed (quoted in bench/results/<date>-api-handler.md).

`--count N` runs N canned calls of one variant and no timing, for instruction counts that machine load does
not move: run it under `valgrind --tool=callgrind` with N and with 0; (difference of the totals) / N is the
instructions per call. The emulator must then run in another process (`--cognito-endpoint`): in-process, its
user-pool key generation varies by a billion instructions or more from run to run.

    .venv/bin/moto_server -p 5055 &
    valgrind --tool=callgrind .venv/bin/python bench/api_ab.py --cognito-endpoint http://127.0.0.1:5055 \
        --count 2000 new=HEAD
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api_handler import TEXT, _cognito_token, _event, _free_port, handler_call  # noqa: E402 - needs ROOT on the path


def _export(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "functions"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "functions"


def _load(functions: Path):
    """Import `categorizer.handlers.api` from `functions`, as a copy separate from any imported before."""
    for name in [m for m in sys.modules if m == "categorizer" or m.startswith("categorizer.")]:
        del sys.modules[name]
    sys.path.insert(0, str(functions))
    try:
        import categorizer.handlers.api as module
    finally:
        sys.path.remove(str(functions))
    if not str(module.__file__).startswith(str(functions)):
        raise SystemExit(f"imported {module.__file__}, not the copy in {functions}")
    return module


def _variant(functions: Path, token: str) -> tuple[Callable[[], None], Callable[[], object]]:
    """(one canned handler call, one real engine call) for the handler built from `functions`."""
    from categorizer_cli.local.lambda_context import LocalLambdaContext

    module = _load(functions)
    classifier = module.services.models.get()
    engine_classify = classifier.classify
    canned = engine_classify([TEXT], top_k=3)
    classifier.classify = lambda *args, **kwargs: canned
    event = _event(token)
    context = LocalLambdaContext(function_name="categorizer-api-bench", timeout_seconds=30)
    call = handler_call(module.handler, event, context, name=str(functions))
    return call, lambda: engine_classify([TEXT], top_k=3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", metavar="label=rev", help="the first is the reference")
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "model")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=100, help="timed calls per variant per round")
    parser.add_argument("--after-engine", action="store_true", help="one real engine call before each timed call")
    parser.add_argument("--count", type=int, help="run this many canned calls of the one variant, untimed")
    parser.add_argument("--cognito-endpoint", help="a moto server already running (default: one in this process)")
    args = parser.parse_args()
    specs = [spec.split("=", 1) for spec in args.variants]
    if any(len(spec) != 2 for spec in specs):
        parser.error("variants are label=rev")
    if args.count is not None and len(specs) != 1:
        parser.error("--count takes one variant")

    from moto.server import ThreadedMotoServer

    server = None
    endpoint = args.cognito_endpoint
    if endpoint is None:
        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
    try:
        env, token = _cognito_token(endpoint)
        os.environ.update(env, MODEL_DIR=str(args.model), ONNX_THREADS="1", STAGE="bench",
                          FEEDBACK_TABLE="bench-feedback", INGEST_BUCKET="bench-ingest", RESULTS_BUCKET="bench-results",
                          POWERTOOLS_TRACE_DISABLED="true", AWS_REGION="us-east-1")
        os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Categorizer")
        with tempfile.TemporaryDirectory(prefix="api-ab-") as tmp:
            variants = {label: _variant(_export(rev, Path(tmp) / label), token) for label, rev in specs}
            for call, engine in variants.values():  # warm-up: JWKS fetch, verified-token cache, first calls
                for _ in range(50):
                    engine()
                    call()
            if args.count is not None:
                [(call, _)] = variants.values()
                for _ in range(args.count):
                    call()
                return 0
            labels = list(variants)
            rounds: dict[str, list[float]] = {label: [] for label in labels}
            load_before = os.getloadavg()
            for r in range(args.rounds):
                samples: dict[str, list[float]] = {label: [] for label in labels}
                for i in range(args.calls):
                    order = labels if (r + i) % 2 == 0 else labels[::-1]
                    for label in order:
                        call, engine = variants[label]
                        if args.after_engine:
                            engine()
                        start = time.perf_counter_ns()
                        call()
                        samples[label].append((time.perf_counter_ns() - start) / 1e6)
                for label in labels:
                    rounds[label].append(statistics.median(samples[label]))
    finally:
        if server is not None:
            server.stop()

    reference = labels[0]
    print(f"API layer (engine answer canned){', after an engine call' if args.after_engine else ', warm'}: "
          f"{args.rounds} rounds x {args.calls} calls per variant; 1-minute load average "
          f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"| variant | rev | median of round p50s, ms | vs {reference}, ms (median of per-round differences) |"
          " rounds faster |")
    print("|---|---|---:|---:|---:|")
    for label, rev in specs:
        diffs = [a - b for a, b in zip(rounds[label], rounds[reference], strict=True)]
        print(f"| {label} | `{rev}` | {statistics.median(rounds[label]):.4f} | {statistics.median(diffs):+.4f} | "
              f"{sum(d < 0 for d in diffs)}/{len(diffs)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
