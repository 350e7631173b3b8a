"""`make up` on a fresh checkout: seconds until the API answers, and until the background build's model serves.

The state measured: .venv installed and the quick model (artifacts/model) built, no artifacts/served and no
.local/ (what a user has after `make install model`, or on the second day of a fresh clone). The checkout is a
copy of this commit (`git archive HEAD`) in a temporary folder with its own .local/ and free loopback ports, so
nothing running here is disturbed; .venv is a link to an installed one. It runs `make up` there, checks the API
(GET /v1/health: the quick model's version), then polls `.local/served-build.json` and the API until the build
is judged (promoted: the API serves the built version; rejected or failed: the quick model keeps serving), and
stops the stack with `make down`.

    .venv/bin/python bench/make_up.py [--venv .venv] [--timeout 2400]

`--served-from DIR` measures the second path instead: the stack has run once (the quick model is champion; a
first `make up` then `make down` stopped its build at once), then DIR (an artifacts/served folder built
earlier, e.g. by `make served-model`) is copied in and `make up` is timed: the bundle is submitted to the gate
without building, and the API swaps to it if it passes.
Results: bench/results/<date>-make-up.md (+ .json), and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FINAL = {"promoted", "rejected", "failed", "serving", "stopped"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health(api_url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{api_url}/v1/health", timeout=5) as answer:  # noqa: S310 - loopback
            return json.loads(answer.read())
    except OSError:
        return None


def checkout(target: Path, venv: Path, quick_model: Path) -> None:
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    os.utime(target / "pyproject.toml", (946684800, 946684800))  # older than the venv's stamp: no reinstall
    (target / ".venv").symlink_to(venv.resolve())
    bundle = quick_model.resolve()
    models = target / "artifacts" / "models"
    models.mkdir(parents=True)
    shutil.copytree(bundle, models / bundle.name)
    shutil.copy2(bundle.with_name(f"{bundle.name}.tar.gz"), models / f"{bundle.name}.tar.gz")
    (target / "artifacts" / "model").symlink_to(f"models/{bundle.name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv")
    parser.add_argument("--quick-model", type=Path, default=ROOT / "artifacts" / "model")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get(
        "CATEGORIZER_DATA", ROOT.parent / "shared" / "data" / "banking77")))
    parser.add_argument("--timeout", type=float, default=2400, help="seconds to wait for the build's decision")
    parser.add_argument("--served-from", type=Path, help="an artifacts/served folder built earlier (see above)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="categorizer-make-up-"))
    checkout(work, args.venv, args.quick_model)
    ports = {"CATEGORIZER_MOTO_PORT": free_port(), "CATEGORIZER_API_PORT": free_port(),
             "CATEGORIZER_TOKEN_PORT": free_port()}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "CATEGORIZER_DATA": str(args.data.resolve()),
           # the venv may be an editable install of another checkout: this copy's code comes first
           "PYTHONPATH": os.pathsep.join(str(work / p) for p in ("functions", "", "cli"))}
    env.pop("CATEGORIZER_ARTIFACTS", None)
    env.pop("CATEGORIZER_LOCAL_DIR", None)
    api_url = f"http://127.0.0.1:{ports['CATEGORIZER_API_PORT']}"
    quick_version = json.loads((args.quick_model / "manifest.json").read_text())["version"]
    status_file = work / ".local" / "served-build.json"
    load: list[tuple[float, tuple[float, float, float]]] = []

    if args.served_from:  # a first run: the quick model becomes champion; its build is stopped at once
        subprocess.run(["make", "up"], cwd=work, env=env, capture_output=True, check=True)
        subprocess.run(["make", "down"], cwd=work, env=env, capture_output=True, check=True)
        shutil.rmtree(work / "artifacts" / "served", ignore_errors=True)
        shutil.copytree(args.served_from, work / "artifacts" / "served", symlinks=True)
    load_before = os.getloadavg()
    started = time.monotonic()
    up = subprocess.run(["make", "up"], cwd=work, env=env, capture_output=True, text=True, check=False)
    up_seconds = time.monotonic() - started
    answered = health(api_url)
    result: dict = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                             text=True, check=True).stdout.strip(),
                    "when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
                    "cpus": os.cpu_count(), "load_before": load_before, "make_up_seconds": round(up_seconds, 1),
                    "make_up_exit": up.returncode, "api_after_make_up": answered, "quick_version": quick_version,
                    "checkout": str(work)}
    print(up.stdout[-1500:], up.stderr[-1500:], sep="\n")
    print(f"make up: {up_seconds:.1f}s, exit {up.returncode}, API {answered}")
    try:
        if up.returncode != 0 or answered is None:
            return 1
        build: dict = {}
        served_at = None
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            load.append((round(time.monotonic() - started, 1), os.getloadavg()))
            build = json.loads(status_file.read_text()) if status_file.is_file() else {}
            serving = (health(api_url) or {}).get("model_version")
            if build.get("state") == "promoted" and serving == build.get("version") and served_at is None:
                served_at = time.monotonic() - started
            if build.get("state") in FINAL and (build.get("state") != "promoted" or served_at is not None):
                break
            time.sleep(5)
        status = subprocess.run([str(work / ".venv" / "bin" / "categorizer"), "status"], cwd=work, env=env,
                                capture_output=True, text=True, check=False).stdout
        print(status)
        built = (build.get("ended_at") or 0) - (build.get("started_at") or 0)
        result |= {"build": build, "build_seconds": round(built, 1) if build.get("ended_at") else None,
                   "built_model_serving_after_seconds": round(served_at, 1) if served_at else None,
                   "served_version": (health(api_url) or {}).get("model_version"), "status_output": status,
                   "load_samples": load[:: max(1, len(load) // 20)],
                   "load_max_1min": round(max((sample[1][0] for sample in load), default=0.0), 2)}
    finally:
        down = subprocess.run(["make", "down"], cwd=work, env=env, capture_output=True, text=True, check=False)
        result["make_down"] = down.stdout.strip()[-300:]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H%M")
    out = ROOT / "bench" / "results" / (f"{stamp}-make-up" + ("-served-from" if args.served_from else ""))
    title = "served folder built earlier" if args.served_from else "fresh checkout"
    command = f"bench/make_up.py --venv {args.venv}" + (
        f" --served-from {args.served_from}" if args.served_from else "")
    build_row = "background build (`categorizer model build --recipe auto`, nice 10; with --served-from: none)"
    state = (f"the stack ran once (quick model champion, its build stopped), then {args.served_from} copied to "
             "artifacts/served (built earlier, never judged)") if args.served_from else \
        ".venv installed, artifacts/model (quick `--fast` model) built, no artifacts/served, no .local/"
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str))
    build = result.get("build", {})
    out.with_suffix(".md").write_text(f"""# `make up`, {title} ({result['when']}, commit {result['commit']})

State: {state}.
Machine: {result['machine']}, {result['cpus']} CPUs, shared; load average before (1/5/15 min):
{', '.join(f'{v:.2f}' for v in load_before)}; highest 1-minute load during the build: {result.get('load_max_1min')}.
Command: `.venv/bin/python {command}`

| what | value |
|---|---|
| `make up` until the API answers (quick model {quick_version}) | {result['make_up_seconds']} s |
| {build_row} | {result.get('build_seconds')} s |
| decision | {build.get('state')} {build.get('version') or ''} |
| gate's reasons | {'; '.join(build.get('reasons', [])[:3])} |
| `make up` start until the API serves the built model | {result.get('built_model_serving_after_seconds')} s |

`categorizer status` at the end:

```
{result.get('status_output', '').strip()}
```
""")
    print(out.with_suffix(".md").read_text())
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
