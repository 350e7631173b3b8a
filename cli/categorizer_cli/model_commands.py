"""`categorizer model build|eval`: the model pipeline from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

from categorizer_cli.paths import DATA_DIR, DEFAULT_MODEL, MODELS_DIR


def add_build_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="train, export int8, evaluate and bundle a model")
    p.add_argument("--recipe", choices=["fast", "full", "auto"], default="auto",
                   help="fast: head on the frozen encoder; full: plus the n-gram head; auto (default): chosen on a "
                        "validation split of the training data among those and fine-tuning, within --budget")
    p.add_argument("--fast", action="store_const", dest="recipe", const="fast", help="same as --recipe fast")
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="time budget of --recipe auto (default 900: fine-tuning is tried only if it fits)")
    p.add_argument("--data", type=Path, nargs="+", help="labelled CSV / JSON / JSONL training file(s)")
    p.add_argument("--test", type=Path, help="evaluation file (default: a stratified 20%% split of --data)")
    p.add_argument("--text-column", nargs="+", default=["text"],
                   help="one or several text columns, joined: 'title,description' or 'title description'")
    p.add_argument("--label-column", default="category")
    p.add_argument("--oos-label", metavar="LABEL",
                   help="the label of out-of-scope examples in the data (e.g. oos): not a class; its items are "
                        "kept out of training and reported against the out-of-scope threshold")
    p.add_argument("--fine-tune-epochs", type=int,
                   help="encoder fine-tuning epochs (default 0: frozen encoder; 2 scored best on validation)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a recipe value")
    p.add_argument("--out", type=Path, default=MODELS_DIR, help="folder for <version>/ and <version>.tar.gz")
    p.add_argument("--no-default-link", action="store_true", help="do not point artifacts/model at this build")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=run_build)


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a bundle on a labelled file")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--data", type=Path, default=DATA_DIR / "test.csv")
    p.add_argument("--text-column", nargs="+", default=["text"], help="text column(s): 'a,b' or 'a b'")
    p.add_argument("--label-column", default="category")
    p.add_argument("--out", type=Path, help="write report.md, metrics.json and plots here")
    p.set_defaults(func=run_eval)


def run_build(args: argparse.Namespace) -> int:
    from model_build.auto import DEFAULT_BUDGET_SECONDS
    from model_build.bundle import make_tarball
    from model_build.data import text_columns_or_error
    from model_build.pipeline import BuildRequest, build
    from model_build.recipe import RECIPES

    text_columns = text_columns_or_error(args.text_column)
    _check_inputs([*(args.data or []), *([args.test] if args.test else [])])
    _quiet_build_logs()
    recipe = RECIPES[args.recipe]
    overrides = dict(item.split("=", 1) for item in args.set)
    if args.fine_tune_epochs is not None:
        overrides["fine_tune_epochs"] = args.fine_tune_epochs
    recipe = recipe.with_overrides(overrides)
    if args.data:
        train_files, test_file = args.data, args.test
    else:
        train_files, test_file = [DATA_DIR / "train.csv"], args.test or DATA_DIR / "test.csv"
    args.out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=args.out))  # two builds never share a folder
    request = BuildRequest(train_files=train_files, test_file=test_file, bundle_dir=staging, recipe=recipe,
                           text_columns=text_columns, label_column=args.label_column, oos_label=args.oos_label,
                           choose_recipe=args.recipe == "auto", budget_seconds=args.budget or DEFAULT_BUDGET_SECONDS,
                           **({"threads": args.threads} if args.threads else {}))
    result = build(request)
    final = args.out / result.version
    staging.rename(final)
    tarball = make_tarball(final, args.out / f"{result.version}.tar.gz")
    if not args.no_default_link and not args.data:
        _point_default_at(final)
    m = result.metrics
    print(f"model {result.version}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, "
          f"review threshold {m['review']['threshold']:.3f} ({m['review']['coverage']:.1%} auto-accepted), "
          f"out-of-scope threshold {m['out_of_scope']['threshold']:.4f} "
          f"({m['out_of_scope']['in_scope_flagged']:.1%} of held-out items flagged), {result.seconds:.0f}s")
    choice = json.loads((final / "manifest.json").read_text(encoding="utf-8")).get("recipe_choice")
    if choice:
        print(f"recipe  {choice['chosen']} ({choice['reason']})")
    print(f"bundle  {final}\ntarball {tarball}\nreport  {final / 'report' / 'report.md'}")
    return 0


def _quiet_build_logs() -> None:
    """Our progress at INFO; onnxruntime's optimizer and quantizer chatter (root logger) only if it warns."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("model_build").setLevel(logging.INFO)


def _point_default_at(bundle_dir: Path) -> None:
    DEFAULT_MODEL.parent.mkdir(parents=True, exist_ok=True)
    tmp = DEFAULT_MODEL.with_name(".model.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(bundle_dir, DEFAULT_MODEL.parent))
    tmp.replace(DEFAULT_MODEL)  # atomic: readers see the old or the new model, never none


def _check_inputs(paths: list[Path]) -> None:
    """Fail before minutes of model loading, not after."""
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(2, "No such file", str(path))


def run_eval(args: argparse.Namespace) -> int:
    from model_build.data import text_columns_or_error
    from model_build.pipeline import evaluate_bundle

    text_columns = text_columns_or_error(args.text_column)
    _check_inputs([args.data])
    metrics = evaluate_bundle(args.model, args.data, text_columns=text_columns,
                              label_column=args.label_column, out_dir=args.out)
    summary = {k: metrics[k] for k in ("n", "accuracy", "macro_f1", "ece")} | {"review": metrics["review"]}
    print(json.dumps(summary, indent=1))
    return 0
