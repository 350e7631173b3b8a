"""Entry point of the `categorizer` command.

Every expected failure (a missing file or column, a stack that is not running, a refused token, no
model...) is an exception that `explain` turns into one or two lines saying what happened and what to
do, and a non-zero exit; `--debug` shows the traceback as well. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from categorizer_cli import (
    label_commands,
    model_commands,
    preflight,
    registry_commands,
    review_commands,
    stack_commands,
)
from categorizer_cli.paths import DEFAULT_MODEL
from categorizer_cli.progress import Progress

EXIT_FAILED = 1  # the command ran and the outcome is a failure (a failed file, an unhealthy stack)
EXIT_USAGE = 2  # what was asked cannot be done: fix the input, the flags or the environment


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="categorizer", description="Sort text into categories.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    model = sub.add_parser("model", help="build, evaluate and manage models").add_subparsers(
        dest="model_command", required=True)
    model_commands.add_build_parser(model)
    model_commands.add_eval_parser(model)
    registry_commands.add_model_parsers(model)

    classify = sub.add_parser("classify", help="classify one or more texts")
    classify.add_argument("texts", nargs="+")
    classify.add_argument("--model", type=Path, help="classify in-process with this bundle (default: through the "
                          "running stack's API if there is one, else artifacts/model)")
    classify.add_argument("--outputs", type=Path, help="stack outputs file (default: .local/outputs.json)")
    classify.add_argument("--top-k", type=int, default=3)
    classify.add_argument("--json", action="store_true", help="print JSON")
    classify.add_argument("--explain", action="store_true",
                          help="also print the words that moved each decision (label and runner-up)")
    classify.set_defaults(func=run_classify)

    classify_file = sub.add_parser("classify-file", help="classify a CSV / JSON / JSON Lines / .xlsx file")
    classify_file.add_argument("input", type=Path)
    classify_file.add_argument("--out", type=Path, required=True,
                               help="results file; for an .xlsx input both OUT.csv and OUT.xlsx are written")
    classify_file.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    classify_file.add_argument("--text-column", nargs="+", default=["text"],
                               help="text column(s): 'a,b' or 'a b'; quote a name with a comma")
    classify_file.add_argument("--sheet", help="the sheet of an .xlsx file (default: the first)")
    classify_file.set_defaults(func=run_classify_file)

    stack_commands.add_parsers(sub)
    preflight.add_parser(sub)
    registry_commands.add_retrain_parser(sub)
    label_commands.add_parsers(sub)
    review_commands.add_parsers(sub)

    bench = sub.add_parser("bench", help="benchmark the engine against TF-IDF+RF and PyTorch peers")
    bench.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    bench.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    bench.set_defaults(func=run_bench)
    return parser


def run_classify(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from categorizer.engine import Classifier, TextError
    from categorizer_cli.local.config import LocalConfig

    if args.model is None and (args.outputs or LocalConfig.from_env().ready_file.exists()):
        return stack_commands.classify_remote(args.texts, top_k=args.top_k, outputs=args.outputs, as_json=args.json,
                                              explain=args.explain)
    classifier = Classifier.from_path(args.model or DEFAULT_MODEL)
    results = classifier.classify(args.texts, top_k=args.top_k, explain=args.explain)
    if args.json:
        print(json.dumps({"model_version": classifier.version,
                          "predictions": [asdict(r) | {"text": t} for t, r in zip(args.texts, results, strict=True)]},
                         indent=1, ensure_ascii=False))
        return 0
    for text, result in zip(args.texts, results, strict=True):
        if isinstance(result, TextError):
            print(f"{text!r}: error {result.code}: {result.message}")
            continue
        flags = " [needs review]" if result.needs_review else ""
        flags += f" [out of scope: novelty {result.novelty:.2f}]" if result.out_of_scope else ""
        flags += " [truncated]" if result.truncated else ""
        alternatives = ", ".join(f"{s.label} {s.score:.2f}" for s in result.top_k[1:])
        print(f"{text!r}\n  -> {result.label} ({result.confidence:.2f}){flags}   also: {alternatives}")
        why = result.explanation
        if why:
            print(stack_commands.explanation_lines(
                why.label, [(s.text, s.weight) for s in why.spans],
                why.runner_up, [(s.text, s.weight) for s in why.runner_up_spans]))
    return 0


def run_classify_file(args: argparse.Namespace) -> int:
    from categorizer.engine import Classifier
    from categorizer.files.errors import FileFailure
    from categorizer.files.pipeline import classify_local_file

    if not args.input.is_file():
        raise FileNotFoundError(2, "No such file", str(args.input))
    classifier = Classifier.from_path(args.model)
    progress = Progress("classifying")
    try:
        result = classify_local_file(args.input, args.out, classifier=classifier, text_columns=args.text_column,
                                     sheet=args.sheet, after_batch=lambda summary: progress.update(summary.rows_in))
    except FileFailure as failure:  # refused by its name (format): nothing was read
        raise FileFailure(failure.reason, f"{args.input}: {failure.message}") from failure
    finally:
        progress.done()
    summary = result.summary
    print(json.dumps(summary.to_dict(), indent=1, ensure_ascii=False))
    if not summary.succeeded:
        print(f"categorizer: {args.input}: {summary.failure_message} ({summary.failure_reason}); "
              f"report in {result.errors_path}", file=sys.stderr)
        return EXIT_FAILED
    outputs = [("results", result.results_path), ("workbook", result.workbook_path), ("errors", result.errors_path)]
    print("\n".join(f"{name:<8} {path}" for name, path in outputs if path), file=sys.stderr)
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from bench_engine import main as bench_main  # bench/ is put on sys.path below

    return bench_main(model=args.model, quick=args.quick)


def explain(error: BaseException) -> tuple[str, str | None] | None:
    """What an expected failure means for the user (what happened, what to do), or None for a bug."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from categorizer.engine.bundle import BundleError
    from categorizer.files.errors import FileFailure
    from categorizer.registry.catalogue import LabelError
    from categorizer.registry.evaluation import EvaluationDataError
    from categorizer_cli.stack_client import StackError
    from model_build.data import DataError

    if isinstance(error, FileNotFoundError):
        return f"no such file: {error.filename or error}", "check the path"
    if isinstance(error, IsADirectoryError):
        return f"{error.filename} is a folder, not a file", None
    if isinstance(error, BundleError):
        return f"no usable model: {error}", ("build one with `categorizer model build --fast` or pass "
                                             "--model PATH to a bundle folder")
    if isinstance(error, DataError | EvaluationDataError):
        return str(error), None
    if isinstance(error, LabelError):
        return str(error), "see `categorizer labels list`"
    if isinstance(error, FileFailure):
        return f"{error.message} ({error.reason})", None
    if isinstance(error, StackError):
        return str(error), None
    if isinstance(error, EndpointConnectionError):
        return f"the stack is not reachable ({error.kwargs.get('endpoint_url', 'AWS')})", \
            "start the local stack with `make up` (or check --outputs)"
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials for a deployed stack", "configure them (aws configure / AWS_PROFILE)"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("NotAuthorizedException", "UserNotFoundException", "UnrecognizedClientException",
                    "InvalidClientTokenId", "ExpiredToken", "AccessDenied", "403"):
            return f"the stack refused the credentials ({code})", \
                "check CATEGORIZER_USERNAME / CATEGORIZER_PASSWORD (or your AWS credentials)"
        if code in ("NoSuchBucket", "ResourceNotFoundException", "ParameterNotFound"):
            return f"the stack has no such resource ({code}: {error.response['Error'].get('Message', '')})", \
                "is the stack up to date? `categorizer status`"
        return None
    if isinstance(error, ValueError) and "text columns" in str(error):
        return str(error), None
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as error:
        explained = explain(error)
        if explained is None:
            raise  # not an expected failure: a bug, keep the traceback
        what, todo = explained
        if args.debug:
            traceback.print_exc()
        print(f"categorizer: {what}", file=sys.stderr)
        if todo:
            print(f"  {todo}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
