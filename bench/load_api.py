"""Bounded load test of the local API on loopback: fixed request count and time limit, concurrency 8.

Starts its own local stack in a temporary folder on free loopback ports (or uses --outputs of a running
one), sends POST /v1/classify with a real Cognito token from 8 workers, and reports errors, throughput
and latency percentiles. It stops by itself: at --requests, or at --seconds, whichever comes first.

    .venv/bin/python bench/load_api.py [--requests 2000] [--seconds 120] [--concurrency 8]
Results: bench/results/<date>-load.md and printed.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CATEGORIZER_DATA", ROOT.parent / "shared" / "data" / "banking77"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_load(api_url: str, token: str, texts: list[str], *, requests: int, seconds: float,
             concurrency: int) -> dict:
    target = urlsplit(api_url)
    if target.hostname not in {"127.0.0.1", "localhost", "::1"}:
        raise SystemExit(f"load tests only target loopback, not {target.hostname}")
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = [0]
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        while time.monotonic() < deadline:
            with lock:
                if issued[0] >= requests:
                    break
                n = issued[0]
                issued[0] += 1
            body = json.dumps({"texts": [texts[n % len(texts)]], "top_k": 3})
            started = time.perf_counter()
            try:
                connection.request("POST", "/v1/classify", body=body, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                outcome = "ok" if response.status == 200 and b"predictions" in payload else f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as error:
                outcome = type(error).__name__
                connection.close()
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            elapsed = time.perf_counter() - started
            with lock:
                if outcome == "ok":
                    latencies.append(elapsed)
                else:
                    errors[outcome] = errors.get(outcome, 0) + 1
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    count = len(latencies)
    return {
        "requests": count + sum(errors.values()), "ok": count, "errors": errors, "seconds": wall,
        "requests_per_s": (count + sum(errors.values())) / wall,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * latencies[min(count - 1, int(0.99 * count))] if latencies else None,
        "max_ms": 1000 * latencies[-1] if latencies else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--outputs", type=Path, help="use a running stack's outputs file")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "cli"))
    from categorizer_cli.stack_client import Stack

    with DATA.joinpath("test.csv").open(encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    own_stack = args.outputs is None
    cli = [sys.executable, "-m", "categorizer_cli.main"]
    with tempfile.TemporaryDirectory(prefix="categorizer-load-") as tmp:
        env = {**os.environ, "CATEGORIZER_LOCAL_DIR": tmp, "CATEGORIZER_MOTO_PORT": str(_free_port()),
               "CATEGORIZER_API_PORT": str(_free_port()), "CATEGORIZER_TOKEN_PORT": str(_free_port())}
        if own_stack:
            subprocess.run([*cli, "up"], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            stack = Stack.load(args.outputs or Path(tmp) / "outputs.json")
            token = stack.machine_token()
            stack.api("POST", "/v1/classify", token=token, body={"texts": texts[:8]})  # warm the model
            result = run_load(stack.get("ApiUrl"), token, texts, requests=args.requests, seconds=args.seconds,
                              concurrency=args.concurrency)
        finally:
            if own_stack:
                subprocess.run([*cli, "down"], env=env, check=False, cwd=ROOT, stdout=subprocess.DEVNULL)
    report = "\n".join([
        f"# API load test, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "",
        f"Local stack on loopback (uvicorn, one process, as `make up` runs it); POST /v1/classify, one "
        f"BANKING77 test text per request, machine-client token; concurrency {args.concurrency}; bounded at "
        f"{args.requests} requests or {args.seconds:.0f} s. Machine: {os.cpu_count()} vCPUs, shared.", "",
        "| requests | ok | errors | req/s | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|---|---|",
        f"| {result['requests']} | {result['ok']} | {sum(result['errors'].values())} {result['errors'] or ''} | "
        f"{result['requests_per_s']:.0f} | {result['p50_ms']:.1f} | {result['p99_ms']:.1f} | {result['max_ms']:.1f} |",
        "",
    ])
    print(report)
    out = ROOT / "bench" / "results" / f"{datetime.now(UTC):%Y-%m-%d-%H%M}-load.md"
    out.write_text(report, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"written {out}")
    return 0 if result["ok"] and not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
