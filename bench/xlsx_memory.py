"""Peak memory of a 200,000-row .xlsx through the batch job path (process_object on moto S3).

Usage: .venv/bin/python bench/xlsx_memory.py [--rows 200000] [--model artifacts/model]
Writes bench/results/<date>-xlsx-memory.md with peak RSS (ru_maxrss), the RSS before the job (model loaded),
rows/s and the load average, against the batch function's memory (infra/config.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

BATCH_MEMORY_MB = 3538  # infra/config.py: the batch function's memory


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "model")
    args = parser.parse_args()

    import boto3
    from moto import mock_aws

    from categorizer.adapters.s3_objects import S3Objects
    from categorizer.batch.job import process_object
    from categorizer.batch.notifications import ObjectCreated
    from categorizer.batch.report import JobDependencies
    from categorizer.contract import BatchSettings, ModelSource
    from categorizer.engine import Classifier
    from tests.files.workbooks import write_workbook

    texts = ["my card has not arrived yet", "I was charged twice for the same coffee",
             "how do I change my PIN?", "the exchange rate on my transfer looks wrong"]
    work = Path(tempfile.mkdtemp(prefix="xlsx-bench-"))
    source = work / "big.xlsx"
    started = time.perf_counter()
    write_workbook(source, ([["id", "title", "text", "opened", "amount"]] +
                            [[i, f"ticket {i}", f"{texts[i % 4]} (ref {i})", dt.datetime(2026, 1, 1 + i % 28),
                              i * 0.25] for i in range(args.rows)]), write_only=True)
    size = source.stat().st_size
    generate_seconds = time.perf_counter() - started

    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1"})
    settings = BatchSettings(model=ModelSource(model_dir=str(args.model), onnx_threads=2),
                             results_bucket="bench-results", max_file_bytes=512 * 1024 * 1024)
    classifier = Classifier.from_path(args.model, threads=2)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bench-ingest")
        s3.create_bucket(Bucket="bench-results")
        s3.upload_file(str(source), "bench-ingest", "ingest/big.xlsx")
        head = s3.head_object(Bucket="bench-ingest", Key="ingest/big.xlsx")
        event = ObjectCreated(bucket="bench-ingest", key="ingest/big.xlsx", etag=head["ETag"].strip('"'),
                              version_id=None, size=size, sequencer=None, event_name="ObjectCreated:Put")
        deps = JobDependencies(settings=settings, objects=S3Objects(s3), get_classifier=lambda: classifier)
        before = _rss_mb()
        started = time.perf_counter()
        outcome = process_object(event, deps)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        summary = outcome.summary
    load = os.getloadavg()
    assert summary is not None and summary.rows_in == summary.rows_classified + summary.rows_rejected
    model = args.model.resolve().name
    counts = f"{summary.rows_in:,} in = {summary.rows_classified:,} classified + {summary.rows_rejected:,} rejected"
    report = f"""# {args.rows:,}-row .xlsx through the batch job path: peak memory

Command: `.venv/bin/python bench/xlsx_memory.py --rows {args.rows}` ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC,
load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on the shared 2-core machine; model {model}).

| what | figure |
|---|---|
| workbook | {args.rows:,} rows x 5 columns, {size / 1e6:.1f} MB (generated in {generate_seconds:.0f} s) |
| outcome | {outcome.status}: {counts} |
| RSS before the job (model loaded, input also held by moto in this process) | {before:,.0f} MB |
| **peak RSS of the process (ru_maxrss)** | **{peak:,.0f} MB** |
| batch function memory (infra/config.py) | {BATCH_MEMORY_MB:,} MB ({peak / BATCH_MEMORY_MB:.0%} used) |
| job time | {seconds:.0f} s ({summary.rows_in / seconds:,.0f} rows/s) |

The peak includes moto's in-memory copies of the input and of the three outputs (on Lambda these live in S3),
so it over-states what the function itself holds.
"""
    out = ROOT / "bench" / "results" / f"{dt.datetime.now(dt.UTC):%Y-%m-%d-%H%M}-xlsx-memory.md"
    out.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
