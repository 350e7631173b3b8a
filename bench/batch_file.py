"""Benchmark (not a test): a 200,000-row CSV through the batch handler against a moto S3 server.

Builds CSVs from the BANKING77 test texts repeated, starts `moto_server` on loopback, and runs each
measurement in a fresh process so peak RSS belongs to that run alone:
  * raw engine: Classifier.classify on the same texts, 256 at a time (before and after the handler runs);
  * handler: upload -> the real S3 notification -> SQS event -> categorizer.handlers.batch.handler,
    at 20,000 and 200,000 rows (memory must not grow with the row count).
Reports rows/s, the ratio to the raw engine (goal >= 0.8), peak RSS and peak RSS above the loaded model.

    .venv/bin/python bench/batch_file.py [--rows 200000] [--small-rows 20000] [--engine-rows 20000] [--threads 2]
Results: bench/results/<date>-batch-file.md and printed.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CATEGORIZER_DATA", ROOT.parent / "shared" / "data" / "banking77"))
BATCH_ROWS = 256


def _peak_rss_mib() -> float:
    """VmHWM: unlike ru_maxrss, it starts afresh at exec instead of at the parent's high-water mark."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _texts() -> list[str]:
    with (DATA / "test.csv").open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def _write_csv(path: Path, rows: int, texts: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for i in range(rows):
            writer.writerow([i, texts[i % len(texts)]])


def _default_model() -> Path:
    default = ROOT / "artifacts" / "model"
    if (default / "manifest.json").is_file():
        return default
    tiny = ROOT / "artifacts" / "bench-tiny-bundle"
    if not (tiny / "manifest.json").is_file():
        from model_build.pipeline import BuildRequest, build
        from model_build.recipe import FAST

        build(BuildRequest(train_files=[ROOT / "tests" / "data" / "tiny.csv"], bundle_dir=tiny, recipe=FAST,
                           progress=False))
    return tiny


# --- workers (each runs in its own process) -------------------------------------------------------------

class _TimedClassifier:
    """The serving classifier, with the wall time spent in classify() added up."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.version = inner.version
        self.seconds = 0.0

    def classify(self, texts, *, top_k=3):
        started = time.perf_counter()
        try:
            return self._inner.classify(texts, top_k=top_k)
        finally:
            self.seconds += time.perf_counter() - started


def worker_engine(args) -> dict:
    from categorizer.engine import Classifier

    texts = _texts()
    texts = [texts[i % len(texts)] for i in range(args.rows)]
    classifier = Classifier.from_path(args.model, threads=args.threads)
    classifier.classify(texts[:BATCH_ROWS])  # warm up
    loaded = _peak_rss_mib()
    started = time.perf_counter()
    for start in range(0, len(texts), BATCH_ROWS):
        classifier.classify(texts[start : start + BATCH_ROWS])
    seconds = time.perf_counter() - started
    return {"rows": args.rows, "seconds": seconds, "rows_per_s": args.rows / seconds,
            "peak_rss_mib": _peak_rss_mib(), "loaded_rss_mib": loaded}


def worker_handler(args) -> dict:
    os.environ.update({
        "AWS_ENDPOINT_URL": args.endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "MODEL_DIR": str(args.model),
        "ONNX_THREADS": str(args.threads), "INGEST_PREFIX": "ingest/", "RESULTS_PREFIX": "results/",
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_NAMESPACE": "CategorizerBench",
    })
    import io
    from contextlib import redirect_stdout

    import boto3

    run_id = f"{args.rows}-{os.getpid()}"
    ingest, results = f"bench-ingest-{run_id}", f"bench-results-{run_id}"
    os.environ["RESULTS_BUCKET"] = results
    s3 = boto3.client("s3")
    sqs = boto3.client("sqs")
    s3.create_bucket(Bucket=ingest)
    s3.create_bucket(Bucket=results)
    queue_url = sqs.create_queue(QueueName=f"bench-{run_id}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=ingest, NotificationConfiguration={"QueueConfigurations": [{
        "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "ingest/"}]}}}]})
    sqs.purge_queue(QueueUrl=queue_url)  # the s3:TestEvent
    s3.upload_file(str(args.csv), ingest, "ingest/bench.csv")
    messages = []
    while not messages:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=5).get("Messages", [])
    event = {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                          "attributes": {}, "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                          "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": "us-east-1"}
                         for m in messages]}

    from categorizer.handlers import batch
    from categorizer_cli.local.lambda_context import LocalLambdaContext

    services = batch.build_services(batch.settings)
    classifier = services.get_classifier()
    classifier.classify(["warm up"] * BATCH_ROWS)
    # Time spent inside the engine during the handler run: the ratio engine time / handler time is the
    # handler's throughput relative to the raw engine measured in the same process at the same moment,
    # which the machine's load cannot skew (the separate raw-engine runs can drift with it).
    timed = _TimedClassifier(classifier)
    batch.services.override(dataclasses.replace(services, get_classifier=lambda: timed))
    loaded = _peak_rss_mib()
    started = time.perf_counter()
    with redirect_stdout(io.StringIO()):  # EMF and logs
        response = batch.handler(event, LocalLambdaContext(function_name="bench", memory_limit_in_mb=3538,
                                                           timeout_seconds=900))
    seconds = time.perf_counter() - started
    assert response == {"batchItemFailures": []}, response
    manifest = json.loads(s3.get_object(Bucket=results, Key="results/bench.manifest.json")["Body"].read())
    assert manifest["status"] == "succeeded" and manifest["rows_classified"] == args.rows, manifest
    return {"rows": args.rows, "seconds": seconds, "rows_per_s": args.rows / seconds,
            "engine_seconds": timed.seconds, "peak_rss_mib": _peak_rss_mib(), "loaded_rss_mib": loaded,
            "input_mib": args.csv.stat().st_size / 2**20,
            "output_mib": s3.head_object(Bucket=results, Key="results/bench.csv")["ContentLength"] / 2**20}


# --- the driver ------------------------------------------------------------------------------------------

def _run_worker(kind: str, **options) -> dict:
    command = [sys.executable, __file__, "--worker", kind]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)  # noqa: S310 - loopback only
            return server, endpoint
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("moto_server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--small-rows", type=int, default=20_000)
    parser.add_argument("--engine-rows", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--worker", choices=["engine", "handler"])
    parser.add_argument("--endpoint")
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    if args.worker:
        result = worker_engine(args) if args.worker == "engine" else worker_handler(args)
        print(json.dumps(result))
        return

    model = args.model or _default_model()
    texts = _texts()
    server, endpoint = _start_moto()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            files = {}
            for rows in (args.small_rows, args.rows):
                files[rows] = Path(tmp) / f"bench-{rows}.csv"
                _write_csv(files[rows], rows, texts)
            common = {"model": model, "threads": args.threads}
            print(f"raw engine, {args.engine_rows:,} texts ...", flush=True)
            engine_before = _run_worker("engine", rows=args.engine_rows, **common)
            handler_runs = []
            for rows in (args.small_rows, args.rows):
                print(f"handler, {rows:,} rows ...", flush=True)
                handler_runs.append(_run_worker("handler", rows=rows, endpoint=endpoint, csv=files[rows], **common))
            print(f"raw engine, {args.engine_rows:,} texts ...", flush=True)
            engine_after = _run_worker("engine", rows=args.engine_rows, **common)
    finally:
        server.terminate()
        server.wait(timeout=10)
    report = _report(model, args, engine_before, engine_after, handler_runs)
    print(report)
    out = ROOT / "bench" / "results" / f"{datetime.now(UTC):%Y-%m-%d}-batch-file.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    print(f"written to {out.relative_to(ROOT)}")


def _report(model: Path, args, engine_before: dict, engine_after: dict, handler_runs: list[dict]) -> str:
    engine_rate = (engine_before["rows_per_s"] + engine_after["rows_per_s"]) / 2
    manifest = json.loads((model / "manifest.json").read_text())
    lines = [
        f"# Batch file benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}. "
        f"Model: `{model.relative_to(ROOT) if model.is_relative_to(ROOT) else model}` "
        f"(version {manifest.get('version')}), onnxruntime threads: {args.threads}. "
        f"S3/SQS: moto_server on loopback. CSV rows: BANKING77 test texts repeated.",
        "",
        f"Raw engine (Classifier.classify, {BATCH_ROWS} texts per call, {args.engine_rows:,} texts): "
        f"{engine_before['rows_per_s']:,.0f} rows/s before, {engine_after['rows_per_s']:,.0f} rows/s after "
        f"the handler runs; mean {engine_rate:,.0f} rows/s.",
        "",
        "| path | rows | seconds | rows/s | vs raw engine runs | engine share of own time | peak RSS (MiB) "
        "| peak RSS above loaded model (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in (("raw engine (before)", engine_before), ("raw engine (after)", engine_after)):
        lines.append(f"| {name} | {run['rows']:,} | {run['seconds']:.1f} | {run['rows_per_s']:,.0f} | "
                     f"{run['rows_per_s'] / engine_rate:.2f} | 1.00 | {run['peak_rss_mib']:.0f} | "
                     f"{run['peak_rss_mib'] - run['loaded_rss_mib']:.0f} |")
    for run in handler_runs:
        lines.append(f"| handler (S3 CSV -> S3) | {run['rows']:,} | {run['seconds']:.1f} | {run['rows_per_s']:,.0f} | "
                     f"{run['rows_per_s'] / engine_rate:.2f} | {run['engine_seconds'] / run['seconds']:.2f} | "
                     f"{run['peak_rss_mib']:.0f} | {run['peak_rss_mib'] - run['loaded_rss_mib']:.0f} |")
    small, large = handler_runs
    drift = abs(engine_before["rows_per_s"] - engine_after["rows_per_s"]) / 2 / engine_rate
    lines += [
        "",
        f"Handler throughput / raw engine at {large['rows']:,} rows: {large['engine_seconds'] / large['seconds']:.2f} "
        f"measured inside the same run (time in Classifier.classify / handler time), "
        f"{large['rows_per_s'] / engine_rate:.2f} against the separate raw-engine runs (mean of before and after; "
        f"shared-machine load moved those by +-{drift:.0%}) "
        f"(goal >= 0.8). Peak RSS {small['peak_rss_mib']:.0f} MiB at {small['rows']:,} rows vs "
        f"{large['peak_rss_mib']:.0f} MiB at {large['rows']:,} rows ({large['rows'] // small['rows']}x the rows; "
        f"input {large['input_mib']:.1f} MiB, results {large['output_mib']:.1f} MiB).",
        "",
        f"Command: `.venv/bin/python bench/batch_file.py --rows {args.rows} --small-rows {args.small_rows} "
        f"--engine-rows {args.engine_rows} --threads {args.threads}`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
