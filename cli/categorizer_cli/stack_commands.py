"""`categorizer up|down|status|token|feedback|drop|retrain`: run and use a stage (local or deployed)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from categorizer_cli.local.config import LocalConfig
from categorizer_cli.stack_client import Stack, StackError, wait_for

TRY_COMMANDS = (
    '.venv/bin/categorizer classify "I still have not received my new card"',
    ".venv/bin/categorizer drop examples/support-messages.csv",
    ".venv/bin/categorizer status",
)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start the local stack in the background (embedded AWS on 127.0.0.1)")
    up.add_argument("--timeout", type=float, default=300)
    up.set_defaults(func=run_up)
    down = sub.add_parser("down", help="stop the local stack (its state is kept in .local/)")
    down.set_defaults(func=run_down)

    def with_outputs(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--outputs", type=Path, help="stack outputs file (default: .local/outputs.json)")
        return parser

    status = with_outputs(sub.add_parser("status", help="health of each part, champion, queues, warnings"))
    status.set_defaults(func=run_status)
    token = with_outputs(sub.add_parser("token", help="print an access token"))
    token.add_argument("--machine", action="store_true", help="client-credentials token (machine client)")
    token.set_defaults(func=run_token)
    feedback = with_outputs(sub.add_parser("feedback", help="send a correction"))
    feedback.add_argument("--prediction-id", required=True)
    feedback.add_argument("--text", required=True)
    feedback.add_argument("--predicted", required=True, help="the label the model gave")
    feedback.add_argument("--correct", required=True, help="the right label")
    feedback.add_argument("--comment")
    feedback.set_defaults(func=run_feedback)
    drop = with_outputs(sub.add_parser("drop", help="upload a CSV/JSON/JSONL file and wait for its results"))
    drop.add_argument("file", type=Path)
    drop.add_argument("--text-column", nargs="+", help="text column(s) (default: text)")
    drop.add_argument("--timeout", type=float, default=600)
    drop.set_defaults(func=run_drop)


# ---------------------------------------------------------------------- up / down

def _running_pid(config: LocalConfig) -> int | None:
    try:
        pid = int(config.pid_file.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def run_up(args: argparse.Namespace) -> int:
    config = LocalConfig.from_env()
    config.directory.mkdir(parents=True, exist_ok=True)
    if _running_pid(config) and config.ready_file.exists():
        print(f"already running (pid {_running_pid(config)})")
        return _print_welcome(config)
    config.ready_file.unlink(missing_ok=True)
    with config.log_file.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "categorizer_cli.local.supervisor"], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=Path(__file__).resolve().parents[2])
    config.pid_file.write_text(str(process.pid))
    print(f"starting the local stack (pid {process.pid}, log {config.log_file}) ...", flush=True)
    ready = wait_for(lambda: config.ready_file.exists() or process.poll() is not None, timeout=args.timeout)
    if not ready or process.poll() is not None or not config.ready_file.exists():
        print(f"the local stack did not start; last lines of {config.log_file}:", file=sys.stderr)
        print("\n".join(config.log_file.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
        if process.poll() is None:
            process.terminate()
        config.pid_file.unlink(missing_ok=True)
        return 1
    return _print_welcome(config)


def _print_welcome(config: LocalConfig) -> int:
    outputs = Stack.load(config.outputs_file).outputs
    print(f"""
categorizer is running locally.
  API           {outputs['ApiUrl']}  (docs: {outputs['ApiUrl']}/docs)
  AWS emulator  {outputs['AwsEndpointUrl']}
  token URL     {outputs['TokenUrl']}
  demo user     {outputs['DemoUsername']} / {outputs['DemoPassword']}
  outputs       {config.outputs_file}

Try:
""" + "\n".join(f"  {c}" for c in TRY_COMMANDS) + "\n\nStop it with `make down`.")
    return 0


def run_down(args: argparse.Namespace) -> int:
    config = LocalConfig.from_env()
    pid = _running_pid(config)
    if pid is None:
        print("the local stack is not running")
        config.pid_file.unlink(missing_ok=True)
        return 0
    os.killpg(pid, signal.SIGTERM)
    if not wait_for(lambda: _running_pid(config) is None and not _alive(pid), timeout=90):
        os.killpg(pid, signal.SIGKILL)
        print("the local stack did not stop in time; killed")
    config.pid_file.unlink(missing_ok=True)
    config.ready_file.unlink(missing_ok=True)
    print("stopped (state kept in .local/state)")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (our child, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------- using a stage

def run_token(args: argparse.Namespace) -> int:
    print(Stack.load(args.outputs).token(machine=args.machine))
    return 0


def classify_remote(texts: list[str], *, top_k: int, outputs: Path | None, as_json: bool) -> int:
    stack = Stack.load(outputs)
    status, body = stack.api("POST", "/v1/classify", token=stack.user_token(),
                             body={"texts": texts, "top_k": top_k})
    if status != 200:
        print(json.dumps(body, indent=1), file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(body, indent=1, ensure_ascii=False))
        return 0
    for text, p in zip(texts, body["predictions"], strict=True):
        flags = " [needs review]" if p["needs_review"] else ""
        also = ", ".join(f"{s['label']} {s['score']:.2f}" for s in p["top_k"][1:])
        print(f"{text!r}\n  -> {p['label']} ({p['confidence']:.2f}){flags}   also: {also}\n"
              f"     prediction_id {p['prediction_id']}")
    print(f"model {body['model_version']}")
    return 0


def run_feedback(args: argparse.Namespace) -> int:
    stack = Stack.load(args.outputs)
    body = {"prediction_id": args.prediction_id, "text": args.text, "predicted_label": args.predicted,
            "correct_label": args.correct, **({"comment": args.comment} if args.comment else {})}
    status, answer = stack.api("POST", "/v1/feedback", token=stack.user_token(), body=body)
    print(json.dumps(answer, indent=1))
    return 0 if status == 201 else 1


def run_drop(args: argparse.Namespace) -> int:
    from categorizer.batch.keys import file_spec_or_failure, plan_output_keys
    from infra.config import INGEST_PREFIX, RESULTS_PREFIX

    if not args.file.is_file():
        print(f"no such file: {args.file}", file=sys.stderr)
        return 2
    stack = Stack.load(args.outputs)
    s3 = stack.aws("s3")
    ingest, results = stack.get("IngestBucket"), stack.get("ResultsBucket")
    key = f"{INGEST_PREFIX}cli/{args.file.name}"
    extra = {"Metadata": {"text-columns": ",".join(args.text_column)}} if args.text_column else {}
    s3.upload_file(str(args.file), ingest, key, ExtraArgs=extra)
    head = s3.head_object(Bucket=ingest, Key=key)
    etag, version = head["ETag"].strip('"'), head.get("VersionId")
    spec, _ = file_spec_or_failure(key)
    keys = plan_output_keys(bucket=ingest, key=key, spec=spec, ingest_prefix=INGEST_PREFIX,
                            results_prefix=RESULTS_PREFIX, results_bucket=results)
    print(f"uploaded s3://{ingest}/{key} ({head['ContentLength']:,} bytes); waiting for results", end="", flush=True)

    def manifest_for_this_upload():
        try:
            body = json.loads(s3.get_object(Bucket=keys.bucket, Key=keys.manifest)["Body"].read())
        except s3.exceptions.NoSuchKey:
            return None
        recorded = body.get("input", {})
        if recorded.get("version_id") and version:
            return body if recorded["version_id"] == version else None
        return body if recorded.get("etag", "").strip('"') == etag else None

    manifest = wait_for(manifest_for_this_upload, timeout=args.timeout, interval=1.0,
                        on_tick=lambda: print(".", end="", flush=True))
    print()
    if manifest is None:
        print(f"no results after {args.timeout:.0f}s; see `categorizer status`", file=sys.stderr)
        return 1
    print(f"status      {manifest['status']}")
    print(f"rows        {manifest['rows_in']} in, {manifest['rows_classified']} classified, "
          f"{manifest['rows_rejected']} rejected")
    top = sorted(manifest.get("counts", {}).items(), key=lambda kv: -kv[1])[:5]
    if top:
        print("top labels  " + ", ".join(f"{label} {count}" for label, count in top))
    print(f"results     s3://{keys.bucket}/{keys.results}")
    print(f"errors      s3://{keys.bucket}/{keys.errors}")
    print(f"manifest    s3://{keys.bucket}/{keys.manifest}")
    return 0 if manifest["status"] == "succeeded" else 1


def run_status(args: argparse.Namespace) -> int:
    """Each part's health, the champion, queue depths and what would raise an alarm."""
    try:
        stack = Stack.load(args.outputs)
    except StackError as error:
        print(error, file=sys.stderr)
        return 1
    problems: list[str] = []
    rows: list[tuple[str, str]] = []
    try:
        status, health = stack.api("GET", "/v1/health")
        rows.append(("API", f"{'ok' if status == 200 else f'HTTP {status}'} (model {health.get('model_version')})"
                     if isinstance(health, dict) else f"HTTP {status}"))
        if status != 200:
            problems.append("the API is not healthy")
    except StackError as error:
        rows.append(("API", f"down ({error})"))
        problems.append("the API is down")
    try:
        ssm, sqs = stack.aws("ssm"), stack.aws("sqs")
        pointer = json.loads(ssm.get_parameter(Name=stack.get("ChampionParameter"))["Parameter"]["Value"])
        rows.append(("champion", pointer["version"]))
        for name, url_key in (("ingest queue", "IngestQueueUrl"), ("dead-letter queue", "IngestDlqUrl")):
            attributes = sqs.get_queue_attributes(QueueUrl=stack.get(url_key), AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            waiting = int(attributes["ApproximateNumberOfMessages"])
            in_flight = int(attributes["ApproximateNumberOfMessagesNotVisible"])
            rows.append((name, f"{waiting} waiting, {in_flight} in flight"))
            if url_key == "IngestDlqUrl" and waiting:
                problems.append(f"{waiting} message(s) in the dead-letter queue: files that failed repeatedly")
        rows.append(("AWS", "ok" + (f" (emulator {stack.outputs['AwsEndpointUrl']})"
                                    if stack.outputs.get("AwsEndpointUrl") else "")))
    except Exception as error:  # any AWS failure is a status line, not a traceback
        rows.append(("AWS", f"unreachable ({type(error).__name__}: {error})"))
        problems.append("AWS (or the emulator) is unreachable")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    print("warnings: " + ("none" if not problems else "\n  - " + "\n  - ".join(problems)))
    return 0 if not problems else 1


def run_retrain_local(timeout: float = 1800) -> dict:
    """Ask the local stack's supervisor to run the scheduled job now and wait for its outcome."""
    config = LocalConfig.from_env()
    if not (_running_pid(config) and config.ready_file.exists()):
        raise StackError("the local stack is not running: `make up` first")
    result_file = config.directory / "retrain.result.json"
    result_file.unlink(missing_ok=True)
    (config.directory / "retrain.request").write_text(str(time.time()))
    if not wait_for(result_file.exists, timeout=timeout, interval=1.0):
        raise StackError(f"no retrain outcome after {timeout:.0f}s; see {config.log_file}")
    return json.loads(result_file.read_text())
