"""Cold start of the API function as Lambda sees it, on the local stack's AWS (moto in server mode).

Each round is a fresh Python process that imports the handler module (what Lambda's init does), then answers
its first request: a REST (v1) classify event with a real Cognito token, which resolves the champion pointer
(SSM), downloads the champion bundle from S3 and unpacks it in one stream, verifies every file's sha256,
creates the ONNX session, fetches the JWKS and classifies. A review table is configured, as in every deployed
stage; the text needs no review, as most do not. The child times each phase by wrapping the
functions the handler calls (the same objects, nothing replaced); the parent times the whole process from
launch to answer.

    .venv/bin/python bench/api_cold_start.py [--model artifacts/served] [--rounds 7]
    # as Lambda: its CPython, only the layer's packages and the runtime's boto3 (no venv, no dev packages)
    .venv/bin/python bench/api_cold_start.py --python python3.13 --layer <built layer> --runtime <boto3 dir>
    # the same, the layer and boto3 built here as synth builds them (what `make bench` runs)
    .venv/bin/python bench/api_cold_start.py --as-lambda
Results: bench/results/<date>-api-cold-start.md (+ .json), and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from report_file import write_report  # noqa: E402 - bench/ is on the path (above)

PHASES = ("python start", "import handler", "champion pointer (SSM)", "download + unpack (S3, one stream)",
          "verify sha256", "ONNX session + tokenizer", "JWKS fetch", "first classify (rest of request)")


def child() -> None:
    """One cold start. Prints a JSON object of phase -> seconds."""
    started = time.perf_counter()
    sys.path[:0] = os.environ["BENCH_PATH"].split(os.pathsep)
    timings: dict[str, float] = {}

    def timed(owner, name: str, phase: str) -> None:
        inner = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start

        setattr(owner, name, wrapper)

    import categorizer.handlers.api as api_module

    timings["import handler"] = time.perf_counter() - started
    from categorizer import model_store
    from categorizer.adapters.model_registry_bucket import ModelBucket
    from categorizer.api.auth import JwksCache
    from categorizer_cli.local.lambda_context import LocalLambdaContext  # stdlib only

    # The pointer's client (built on first use) and its read: SSMProvider in every version of the store.
    timed(model_store.parameters.SSMProvider, "__init__", "champion pointer (SSM)")
    timed(model_store.parameters.SSMProvider, "get", "champion pointer (SSM)")
    timed(ModelBucket, "open", "download + unpack (S3, one stream)")  # the GET; its body is read while unpacking
    timed(model_store, "extract_bundle_stream", "download + unpack (S3, one stream)")
    timed(model_store, "load_bundle", "verify sha256")
    timed(model_store, "Classifier", "ONNX session + tokenizer")
    timed(JwksCache, "_fetch", "JWKS fetch")
    event = json.loads(os.environ["BENCH_EVENT"])
    request_started = time.perf_counter()
    response = api_module.handler(event, LocalLambdaContext(function_name="categorizer-api-bench",
                                                            timeout_seconds=30))
    request = time.perf_counter() - request_started
    if response["statusCode"] != 200:
        raise SystemExit(f"handler answered {response['statusCode']}: {response['body'][:300]}")
    if json.loads(response["body"])["predictions"][0]["needs_review"]:  # it would time a queue write too
        raise SystemExit("the bench's text needs review: most first requests queue nothing; choose another")
    measured = sum(timings.get(p, 0.0) for p in PHASES[2:-1])
    timings["first classify (rest of request)"] = request - measured
    timings["in process"] = time.perf_counter() - started
    print("BENCH " + json.dumps(timings), flush=True)


def _setup(endpoint: str, bundle_tarball: Path, version: str) -> dict[str, str]:
    import boto3
    from api_handler import _cognito_token

    aws = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "bench",
           "aws_secret_access_key": "bench"}
    env, token = _cognito_token(endpoint)
    from categorizer.contract.names import REVIEW_TABLE

    s3, ssm = boto3.client("s3", **aws), boto3.client("ssm", **aws)
    boto3.client("dynamodb", **aws).create_table(**REVIEW_TABLE.create_table_kwargs("bench-review"))
    s3.create_bucket(Bucket="bench-models")
    key = f"models/{version}/model.tar.gz"
    s3.upload_file(str(bundle_tarball), "bench-models", key)
    ssm.put_parameter(Name="/categorizer/bench/champion", Type="String",
                      Value=json.dumps({"version": version, "key": key}))
    from api_handler import _event

    return {**env, "BENCH_EVENT": json.dumps(_event(token)), "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "STAGE": "bench",
            "MODEL_BUCKET": "bench-models", "CHAMPION_PARAMETER": "/categorizer/bench/champion",
            "FEEDBACK_TABLE": "bench-feedback", "REVIEW_TABLE": "bench-review", "INGEST_BUCKET": "bench-ingest",
            "RESULTS_BUCKET": "bench-results",
            "POWERTOOLS_METRICS_NAMESPACE": "Categorizer", "POWERTOOLS_LOG_LEVEL": "WARNING", "ONNX_THREADS": "1"}


from api_handler import LAMBDA_ENV  # noqa: E402 - bench/ is on the path (above)

# The earlier measurement's environment (outside Lambda, tracing off), kept as the peer: --compare-plain.
PLAIN_ENV = {"POWERTOOLS_TRACE_DISABLED": "true"}


def _code_of(rev: str, into: Path) -> Path:
    """functions/ of git revision `rev`, built as its asset would be (bytecode included)."""
    from infra.layer_build import build_function_code

    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "functions"], check=True,
                             capture_output=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return build_function_code(into / "task", source=into / "functions")


def _lambda_runtime(into: Path) -> tuple[str, Path, Path]:
    """(Lambda's Python, the layer as synth builds it, the runtime's boto3), built under `into`."""
    from infra.layer_build import LAYERS_DIR, build_layer, find_lambda_python
    from infra.measure_layer import install_runtime_sdk

    python = find_lambda_python()
    if python is None:
        sys.exit("--as-lambda: no Python of the Lambda runtime's version on this machine")
    build_layer(LAYERS_DIR / "runtime" / "requirements.txt", into / "layer")
    return python, into / "layer", install_runtime_sdk(into / "runtime")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "served",
                        help="an artifacts folder (its model/ bundle and models/<version>.tar.gz)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--python", default=sys.executable, help="the child interpreter (default: this one)")
    parser.add_argument("--layer", type=Path, help="a built dependency layer (its python/ folder is used)")
    parser.add_argument("--runtime", type=Path, help="what the Lambda runtime provides (boto3, botocore, ...)")
    parser.add_argument("--as-lambda", action="store_true",
                        help="build the layer and the runtime's SDK as synth does and run on Lambda's Python "
                             "(what --python/--layer/--runtime give by hand)")
    parser.add_argument("--compare-plain", action="store_true",
                        help="also time, interleaved, a child outside a Lambda-like environment (the old figure)")
    parser.add_argument("--compare-rev", metavar="REV",
                        help="also time, interleaved, the function code of git revision REV (with --layer)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return 0
    built_runtime = tempfile.TemporaryDirectory(prefix="cold-runtime-")
    if args.as_lambda:
        args.python, args.layer, args.runtime = _lambda_runtime(Path(built_runtime.name))
    if args.compare_rev and not args.layer:
        parser.error("--compare-rev needs --layer (both codes run as their assets ship them)")
    manifest = json.loads((args.model / "model" / "manifest.json").read_text(encoding="utf-8"))
    version = manifest["version"]
    tarball = args.model / "models" / f"{version}.tar.gz"
    if not tarball.is_file():
        sys.exit(f"no {tarball}: build the model with `make served-model`")

    from api_handler import _free_port
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    loads = [os.getloadavg()[0]]
    modes = {"lambda": LAMBDA_ENV, **({"plain": PLAIN_ENV} if args.compare_plain else {}),
             **({f"rev {args.compare_rev}": LAMBDA_ENV} if args.compare_rev else {})}
    by_mode: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    code_dir = tempfile.TemporaryDirectory(prefix="cold-code-")
    try:
        env = _setup(f"http://127.0.0.1:{port}", tarball, version)
        # The function's code (and the local Lambda context stub); with --layer, only the layer's packages and
        # the code as the asset ships it (bytecode for Lambda's Python), never written to (-B: a read-only disk).
        code = {mode: ROOT / "functions" for mode in modes}
        if args.layer:
            from infra.layer_build import build_function_code

            built = build_function_code(Path(code_dir.name) / "task")
            code = dict.fromkeys(modes, built)
        if args.compare_rev:
            code[f"rev {args.compare_rev}"] = _code_of(args.compare_rev, Path(code_dir.name) / "rev")
        runtime = [p for p in (args.layer and args.layer / "python", args.runtime) if p]
        command = [args.python, *(["-I", "-B"] if args.layer else []), __file__, "--child"]
        for _, mode in ((r, m) for r in range(args.rounds) for m in modes):
            with tempfile.TemporaryDirectory(prefix="cold-") as cache:
                base = {k: v for k, v in os.environ.items() if k not in LAMBDA_ENV and k not in PLAIN_ENV}
                child_env = {**base, **env, **modes[mode], "MODEL_CACHE_DIR": cache,
                             "BENCH_PATH": os.pathsep.join(map(str, [code[mode], ROOT / "cli", *runtime]))}
                launched = time.perf_counter()
                # Launch to the answer line: the process's exit (interpreter teardown) is not cold start.
                process = subprocess.Popen(command, env=child_env, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
                line = ""
                for line in process.stdout:  # type: ignore[union-attr]
                    if line.startswith("BENCH "):
                        break
                total = time.perf_counter() - launched
                _, errors = process.communicate(timeout=120)
                if not line.startswith("BENCH "):
                    raise SystemExit(f"cold start failed: {errors[-2000:]}")
            timings = json.loads(line[len("BENCH "):])
            timings["python start"] = total - timings["in process"]
            timings["whole (launch to answer)"] = total
            by_mode[mode].append(timings)
            loads.append(os.getloadavg()[0])
    finally:
        server.stop()
        code_dir.cleanup()
        built_runtime.cleanup()

    rows = [*PHASES, "whole (launch to answer)"]
    medians_by = {mode: {row: statistics.median(r.get(row, 0.0) for r in by_mode[mode]) for row in rows}
                  for mode in modes}
    medians = medians_by["lambda"]
    peers = [mode for mode in modes if mode != "lambda"]  # measured interleaved with it, round by round
    whole = "whole (launch to answer)"
    described = {"plain": "the same child outside a Lambda-like environment with tracing off"}
    if args.compare_rev:
        described[f"rev {args.compare_rev}"] = f"the function code of git revision `{args.compare_rev}`, same build"
    now = datetime.now(UTC)
    lines = [
        f"# API function cold start on the local stack ({now:%Y-%m-%d %H:%M} UTC)", "",
        f"Command: `.venv/bin/python bench/api_cold_start.py --model {args.model} --rounds {args.rounds}"
        + (" --as-lambda" if args.as_lambda else
           f" --python {args.python} --layer {args.layer} --runtime {args.runtime}" if args.layer else "")
        + (" --compare-plain" if args.compare_plain else "")
        + (f" --compare-rev {args.compare_rev}" if args.compare_rev else "") + "`", "",
        f"Child: `{args.python}`" + (" -I -B, only the Lambda layer's packages, the runtime's boto3 and the "
                                     "function code as its asset ships it (with bytecode) on its path"
                                     if args.layer else ", this virtualenv") + ".", "",
        f"Model `{version}` ({manifest.get('labels')} labels), downloaded from moto S3 on loopback. Machine: "
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}; 1-minute "
        f"load average {min(loads):.1f}-{max(loads):.1f} during the run. Medians of {args.rounds} fresh "
        "processes (warm page cache: Lambda's cold start also reads its code from a warm-ish cache).", "",
        "Environment: Lambda's (LAMBDA_TASK_ROOT, a trace header, X-Ray tracing active as deployed; a review table "
        "configured, as in every deployed stage, and a text that needs no review)"
        + "".join(f"; `{peer}` = {described[peer]}" for peer in peers)
        + ("; peers interleaved round by round" if peers else "") + ".", "",
        "| phase | median s | share |" + "".join(f" {peer} median s |" for peer in peers),
        "|---|---:|---:|" + "---:|" * len(peers),
        *[f"| {row} | {medians[row]:.3f} | {medians[row] / medians[whole]:.0%} |"
          + "".join(f" {medians_by[peer][row]:.3f} |" for peer in peers) for row in rows], "",
        *[f"Whole, this code / `{peer}`: {medians[whole] / medians_by[peer][whole]:.2f}x." for peer in peers],
        "", f"Goal (issue 18): whole <= 1.0 s -> **{'met' if medians[whole] <= 1.0 else 'not met'}**.",
    ]
    report = "\n".join(lines) + "\n"
    out_md = write_report("api-cold-start", report, now)
    out_md.with_suffix(".json").write_text(json.dumps({"rounds": by_mode, "medians": medians_by, "load": loads,
                                                       "model": version}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
