"""Entry point of the `categorizer` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from categorizer_cli import model_commands, preflight, registry_commands, stack_commands
from categorizer_cli.paths import DEFAULT_MODEL


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="categorizer", description="Sort text into categories.")
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
    classify.set_defaults(func=run_classify)

    classify_file = sub.add_parser("classify-file", help="classify a CSV / JSON / JSON Lines file")
    classify_file.add_argument("input", type=Path)
    classify_file.add_argument("--out", type=Path, required=True)
    classify_file.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    classify_file.add_argument("--text-column", nargs="+", default=["text"])
    classify_file.set_defaults(func=run_classify_file)

    stack_commands.add_parsers(sub)
    preflight.add_parser(sub)
    registry_commands.add_retrain_parser(sub)

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
        return stack_commands.classify_remote(args.texts, top_k=args.top_k, outputs=args.outputs, as_json=args.json)
    classifier = Classifier.from_path(args.model or DEFAULT_MODEL)
    results = classifier.classify(args.texts, top_k=args.top_k)
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
        flags += " [truncated]" if result.truncated else ""
        alternatives = ", ".join(f"{s.label} {s.score:.2f}" for s in result.top_k[1:])
        print(f"{text!r}\n  -> {result.label} ({result.confidence:.2f}){flags}   also: {alternatives}")
    return 0


def run_classify_file(args: argparse.Namespace) -> int:
    from categorizer.engine import Classifier
    from categorizer.files.errors import FileFailure
    from categorizer.files.pipeline import classify_local_file

    try:
        result = classify_local_file(args.input, args.out, classifier=Classifier.from_path(args.model),
                                     text_columns=args.text_column)
    except FileFailure as failure:
        print(f"{args.input}: {failure}", file=sys.stderr)
        return 2
    print(json.dumps(result.summary.to_dict(), indent=1, ensure_ascii=False))
    print(f"results {result.results_path}\nerrors  {result.errors_path}", file=sys.stderr)
    return 0 if result.summary.succeeded else 1


def run_bench(args: argparse.Namespace) -> int:
    from bench_engine import main as bench_main  # bench/ is put on sys.path below

    return bench_main(model=args.model, quick=args.quick)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
