"""`categorizer up|down|status|token|feedback|drop|files|retrain`: run and use a stage (local or deployed)."""

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

SAME_FOLDER = Path("\0same-folder")  # `--download` without DIR: next to the input file
CLI_FOLDER = "cli/"  # `drop` uploads to <ingest prefix>cli/<name>; `files` lists that folder
TRY_COMMANDS = (
    '.venv/bin/categorizer classify "I still have not received my new card"',
    ".venv/bin/categorizer drop examples/support-messages.csv",
    ".venv/bin/categorizer status",
)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start the local stack in the background (embedded AWS on 127.0.0.1)")
    up.add_argument("--timeout", type=float, default=300)
    up.add_argument("--served", type=Path, metavar="DIR",
                    help="the served model's artifacts folder (make up: artifacts/served): its model serves if it "
                         "exists; else the quick model serves at once and DIR is built in the background, then "
                         "judged by the promotion gate (`categorizer status` shows the build)")
    up.add_argument("--served-recipe", default="auto", choices=["fast", "full", "auto"],
                    help="recipe of the background build (default auto)")
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
    drop = with_outputs(sub.add_parser("drop", help="upload a CSV/JSON/JSONL/.xlsx file and wait for its results"))
    drop.add_argument("file", type=Path)
    drop.add_argument("--text-column", nargs="+", help="text column(s): 'a,b' or 'a b' (default: text)")
    drop.add_argument("--sheet", help="the sheet of an .xlsx file (default: the first)")
    drop.add_argument("--download", type=Path, nargs="?", const=SAME_FOLDER, metavar="DIR",
                      help="download results, errors and manifest next to the file (or into DIR)")
    drop.add_argument("--timeout", type=float, default=600)
    drop.set_defaults(func=run_drop)
    files = with_outputs(sub.add_parser("files", help="your recent files and their status"))
    files.add_argument("--limit", type=int, default=20)
    files.set_defaults(func=run_files)


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
    served = ["--served", str(args.served.resolve()), "--served-recipe", args.served_recipe] if args.served else []
    with config.log_file.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our interpreter and module; DIR is a path argument
            [sys.executable, "-m", "categorizer_cli.local.supervisor", *served], stdout=log, stderr=subprocess.STDOUT,
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
    build = _served_build_line(config.outputs_file)
    print(f"""
categorizer is running locally.
  API           {outputs['ApiUrl']}  (docs: {outputs['ApiUrl']}/docs)
  AWS emulator  {outputs['AwsEndpointUrl']}
  token URL     {outputs['TokenUrl']}
  demo user     {outputs['DemoUsername']} / {outputs['DemoPassword']}
  outputs       {config.outputs_file}""" + (f"\n  served model  {build}" if build else "") + """

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


def explanation_lines(label: str, spans: list[tuple[str, float]], runner_up: str | None,
                      runner_up_spans: list[tuple[str, float]]) -> str:
    """`     why card_arrival: "arrive" 0.41, "new card" 0.12` (and the runner-up's), for the terminal."""

    def words(items: list[tuple[str, float]]) -> str:
        return ", ".join(f"{text!r} {weight:.2f}" for text, weight in items) or "(no single word)"

    lines = [f"     why {label}: {words(spans)}"]
    if runner_up:
        lines.append(f"     why {runner_up}: {words(runner_up_spans)}")
    return "\n".join(lines)


def classify_remote(texts: list[str], *, top_k: int, outputs: Path | None, as_json: bool,
                    explain: bool = False) -> int:
    stack = Stack.load(outputs)
    status, body = stack.api("POST", "/v1/classify", token=stack.user_token(),
                             body={"texts": texts, "top_k": top_k, **({"explain": True} if explain else {})})
    if status != 200:
        print(json.dumps(body, indent=1), file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(body, indent=1, ensure_ascii=False))
        return 0
    for text, p in zip(texts, body["predictions"], strict=True):
        flags = " [needs review]" if p["needs_review"] else ""
        flags += f" [out of scope: novelty {p['novelty']:.2f}]" if p.get("out_of_scope") else ""
        also = ", ".join(f"{s['label']} {s['score']:.2f}" for s in p["top_k"][1:])
        print(f"{text!r}\n  -> {p['label']} ({p['confidence']:.2f}){flags}   also: {also}\n"
              f"     prediction_id {p['prediction_id']}")
        if p.get("explanation") is not None:
            runner_up = p["top_k"][1]["label"] if len(p["top_k"]) > 1 else None
            print(explanation_lines(p["label"], [(s["text"], s["weight"]) for s in p["explanation"]], runner_up,
                                    [(s["text"], s["weight"]) for s in p["explanation_runner_up"] or []]))
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
    from categorizer.files.formats import detect_format
    from categorizer.files.rows import parse_text_columns
    from categorizer_cli.progress import Progress
    from infra.config import INGEST_PREFIX, RESULTS_PREFIX

    if not args.file.is_file():
        raise FileNotFoundError(2, "No such file", str(args.file))
    detect_format(args.file.name)  # an unsupported name fails here, before the upload
    metadata = {}
    if args.text_column:
        metadata["text-columns"] = _metadata_columns(parse_text_columns(args.text_column))
    if args.sheet:
        metadata["sheet"] = args.sheet
    stack = Stack.load(args.outputs)
    s3 = stack.aws("s3")
    ingest, results = stack.get("IngestBucket"), stack.get("ResultsBucket")
    s3.head_bucket(Bucket=ingest)  # a stack that is not running fails here, in one line
    key = f"{INGEST_PREFIX}{CLI_FOLDER}{args.file.name}"
    s3.upload_file(str(args.file), ingest, key, ExtraArgs={"Metadata": metadata} if metadata else None)
    head = s3.head_object(Bucket=ingest, Key=key)
    etag, version = head["ETag"].strip('"'), head.get("VersionId")
    spec, _ = file_spec_or_failure(key)
    keys = plan_output_keys(bucket=ingest, key=key, spec=spec, ingest_prefix=INGEST_PREFIX,
                            results_prefix=RESULTS_PREFIX, results_bucket=results)
    print(f"uploaded s3://{ingest}/{key} ({head['ContentLength']:,} bytes); waiting for results", file=sys.stderr)
    rows = _estimated_rows(args.file)
    progress = Progress("waiting", total=rows)

    def manifest_for_this_upload():
        try:
            body = json.loads(s3.get_object(Bucket=keys.bucket, Key=keys.manifest)["Body"].read())
        except s3.exceptions.NoSuchKey:
            return None
        recorded = body.get("input", {})
        if recorded.get("version_id") and version:
            return body if recorded["version_id"] == version else None
        return body if recorded.get("etag", "").strip('"') == etag else None

    # The function publishes nothing until the manifest; for a long file the line shows the time spent.
    manifest = wait_for(manifest_for_this_upload, timeout=args.timeout, interval=1.0,
                        on_tick=lambda: progress.update(0))
    progress.done()
    if manifest is None:
        raise StackError(f"no results after {args.timeout:.0f}s (the file is still queued or processing); "
                         "see `categorizer files` and `categorizer status`")
    print(f"status      {manifest['status']}")
    if manifest.get("failure"):
        print(f"failure     {manifest['failure']['message']} ({manifest['failure']['reason']})")
    print(f"rows        {manifest['rows_in']:,} in, {manifest['rows_classified']:,} classified, "
          f"{manifest['rows_rejected']:,} rejected")
    if manifest.get("encoding") and manifest["encoding"] != "utf-8":
        print(f"encoding    {manifest['encoding']} (confidence {manifest.get('encoding_confidence')})")
    top = sorted(manifest.get("counts", {}).items(), key=lambda kv: -kv[1])[:5]
    if top:
        print("top labels  " + ", ".join(f"{label} {count}" for label, count in top))
    outputs = _manifest_outputs(manifest, keys)
    if args.download is None:
        for name, output_key in outputs:
            print(f"{name:<11} s3://{keys.bucket}/{output_key}")
    else:
        folder = args.file.resolve().parent if args.download == SAME_FOLDER else args.download
        for name, path in download_outputs(s3, keys.bucket, outputs, folder, stem=_stem(args.file.name)):
            print(f"{name:<11} {path}")
    return 0 if manifest["status"] == "succeeded" else 1


def _metadata_columns(columns: tuple[str, ...]) -> str:
    """Columns as the object metadata carries them: comma-separated, a name with a comma or space quoted."""
    return ",".join(f'"{name}"' if any(c in name for c in ', \t') else name for name in columns)


def _stem(name: str) -> str:
    from categorizer.files.formats import detect_format

    return detect_format(name).stem


def _estimated_rows(path: Path) -> int | None:
    """Lines in a text file (a row estimate for the progress line); None for a compressed or binary one."""
    if path.suffix.lower() in (".gz", ".xlsx"):
        return None
    with path.open("rb") as handle:
        return max(sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1, 0)


def _manifest_outputs(manifest: dict, keys) -> list[tuple[str, str]]:
    recorded = manifest.get("outputs") or {}
    outputs = [("results", recorded.get("results")), ("workbook", recorded.get("workbook")),
               ("errors", recorded.get("errors") or keys.errors), ("manifest", keys.manifest)]
    return [(name, key) for name, key in outputs if key]


def download_outputs(s3, bucket: str, outputs: list[tuple[str, str]], folder: Path, *,
                     stem: str) -> list[tuple[str, Path]]:
    """Fetch each output into `folder`: <stem>.results.csv (and .results.xlsx), <stem>.errors.csv,
    <stem>.manifest.json; a results file never lands on the input file of the same name."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, key in outputs:
        rest = key.rsplit("/", 1)[-1][len(stem):]  # ".csv", ".errors.csv", ".manifest.json", ".xlsx"
        target = folder / (f"{stem}.results{rest}" if name in ("results", "workbook") else f"{stem}{rest}")
        temporary = target.with_name(f".{target.name}.part")
        s3.download_file(bucket, key, str(temporary))
        temporary.replace(target)  # a half-downloaded file never has the final name
        saved.append((name, target))
    return saved


def run_files(args: argparse.Namespace) -> int:
    """The files uploaded with `drop` (newest first), each with its status from the manifest."""
    from categorizer.batch.keys import file_spec_or_failure, plan_output_keys
    from infra.config import INGEST_PREFIX, RESULTS_PREFIX

    stack = Stack.load(args.outputs)
    s3 = stack.aws("s3")
    ingest, results = stack.get("IngestBucket"), stack.get("ResultsBucket")
    prefix = f"{INGEST_PREFIX}{CLI_FOLDER}"
    listed = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=ingest, Prefix=prefix):
        listed.extend(page.get("Contents", []))
    listed.sort(key=lambda item: item["LastModified"], reverse=True)
    if not listed:
        print("no files yet: `categorizer drop FILE` uploads one")
        return 0
    print(f"{'uploaded (UTC)':<20} {'status':<11} {'rows in':>9} {'classified':>10} {'rejected':>9}  file")
    for item in listed[: args.limit]:
        spec, _ = file_spec_or_failure(item["Key"])
        keys = plan_output_keys(bucket=ingest, key=item["Key"], spec=spec, ingest_prefix=INGEST_PREFIX,
                                results_prefix=RESULTS_PREFIX, results_bucket=results)
        manifest = _read_manifest(s3, keys.bucket, keys.manifest)
        current = manifest is not None and (manifest.get("input") or {}).get("etag", "").strip('"') == \
            item["ETag"].strip('"')
        status = manifest["status"] if current else "processing"
        counts = [f"{manifest[name]:,}" if current else "-" for name in ("rows_in", "rows_classified",
                                                                          "rows_rejected")]
        print(f"{item['LastModified']:%Y-%m-%d %H:%M:%S}  {status:<11} {counts[0]:>9} {counts[1]:>10} "
              f"{counts[2]:>9}  {item['Key'][len(prefix):]}")
    return 0


def _read_manifest(s3, bucket: str, key: str) -> dict | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


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
    build = _served_build_status(stack, args.outputs)
    if build is not None:
        from categorizer_cli.local.served_build import BuildState

        rows.append(("served build", build.describe()))
        if build.state is BuildState.FAILED:
            problems.append(f"the background build failed; the quick model keeps serving (log {build.log})")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    print("warnings: " + ("none" if not problems else "\n  - " + "\n  - ".join(problems)))
    return 0 if not problems else 1


def _served_build_status(stack: Stack, outputs: Path | None):
    """The local stack's background build (`make up`), from the status file beside its outputs; None elsewhere."""
    if not stack.outputs.get("AwsEndpointUrl"):
        return None
    from categorizer_cli.local.served_build import STATUS_FILE, BuildStatus

    return BuildStatus.read((outputs or LocalConfig.from_env().outputs_file).parent / STATUS_FILE)


def _served_build_line(outputs_file: Path) -> str | None:
    from categorizer_cli.local.served_build import STATUS_FILE, BuildStatus

    status = BuildStatus.read(outputs_file.parent / STATUS_FILE)
    return status.describe() if status else None


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
