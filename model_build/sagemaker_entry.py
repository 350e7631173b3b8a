"""Training entrypoint, run unchanged as a SageMaker script-mode job and locally with flags.

SageMaker's contract: channels in SM_CHANNEL_<NAME> (train, test, feedback, labels), hyperparameters as
`--name value` arguments (and SM_HPS), the model written to SM_MODEL_DIR (/opt/ml/model), which SageMaker
packs into model.tar.gz. The local stack runs this same file as a subprocess with the same directories.

The `labels` channel (label_map.json, written by the feedback export from the label catalogue) renames,
merges and drops labels in the base data and the hold-out before training (the stored files are never
changed), and lists the labels the model must know: the base data's, mapped, plus proposed labels whose
examples arrive in the feedback channel. Without it the base data's labels are the set (as before).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

DATA_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")


def _channel(name: str) -> Path | None:
    value = os.environ.get(f"SM_CHANNEL_{name.upper()}")
    return Path(value) if value else None


def data_files(directory: Path | None) -> list[Path]:
    if directory is None or not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name.lower().endswith(DATA_SUFFIXES))


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict[str, str]]:
    from model_build.recipe import Recipe

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=Path, default=_channel("train"))
    parser.add_argument("--test", type=Path, default=_channel("test"))
    parser.add_argument("--feedback", type=Path, default=_channel("feedback"))
    parser.add_argument("--labels", type=Path, default=_channel("labels"))
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model")))
    parser.add_argument("--text-columns", default="text", help="comma-separated")
    parser.add_argument("--label-column", default="category")
    parser.add_argument("--oos-label", default=None, help="label of out-of-scope examples (not a class)")
    parser.add_argument("--recipe", choices=["fast", "full", "auto"], default="full")
    parser.add_argument("--budget-seconds", type=float, default=None, help="time budget of --recipe auto")
    for f in fields(Recipe):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None)
    args = parser.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in fields(Recipe) if getattr(args, f.name) is not None}
    return args, overrides


def read_feedback(files: list[Path], *, labels: set[str], weight: float):
    """Feedback export rows: {"text": ..., "label": ...}; rows with unknown labels are dropped and counted."""
    from model_build.data import LabelledData

    texts, out_labels, skipped = [], [], 0
    for path in files:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                row = json.loads(line)
                text, label = str(row.get("text") or "").strip(), str(row.get("label") or "").strip()
                if text and label in labels:
                    texts.append(text)
                    out_labels.append(label)
                else:
                    skipped += 1
    return LabelledData(texts, out_labels, [weight] * len(texts)), skipped


def read_label_map(directory: Path | None) -> tuple[dict[str, str | None], set[str]]:
    """label_map.json: {"map": {old: new | null}, "labels": [...]} ({} and no labels without the channel)."""
    path = directory / "label_map.json" if directory else None
    if path is None or not path.is_file():
        return {}, set()
    data = json.loads(path.read_text(encoding="utf-8"))
    return dict(data.get("map") or {}), set(data.get("labels") or ())


def mapped_copy(source: Path, target_dir: Path, *, label_column: str, mapping: dict[str, str | None]) -> Path:
    """The file with its labels mapped (rows mapped to null dropped), in the same format, under target_dir."""
    import csv

    target = target_dir / source.name
    target.parent.mkdir(parents=True, exist_ok=True)

    def mapped(label: object) -> str | None:
        text = str(label or "").strip()
        return mapping.get(text, text)

    name = source.name.lower()
    if name.endswith(".csv"):
        with source.open(encoding="utf-8-sig", newline="") as handle, target.open("w", encoding="utf-8",
                                                                                    newline="") as out:
            reader = csv.DictReader(handle)
            writer = csv.DictWriter(out, fieldnames=list(reader.fieldnames or ()))
            writer.writeheader()
            for row in reader:
                label = mapped(row.get(label_column))
                if label is not None:
                    writer.writerow({**row, label_column: label})
        return target
    if name.endswith(".json"):
        rows = json.loads(source.read_text(encoding="utf-8-sig"))
    else:
        rows = [json.loads(line) for line in source.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    kept = [{**row, label_column: mapped(row.get(label_column))} for row in rows
            if mapped(row.get(label_column)) is not None]
    if name.endswith(".json"):
        target.write_text(json.dumps(kept, ensure_ascii=False), encoding="utf-8")
    else:
        target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    from model_build.auto import DEFAULT_BUDGET_SECONDS
    from model_build.data import read_labelled
    from model_build.pipeline import BuildRequest, build
    from model_build.recipe import RECIPES

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("model_build").setLevel(logging.INFO)
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    recipe = RECIPES[args.recipe].with_overrides(overrides)
    train_files = data_files(args.train)
    if not train_files:
        print(f"no training data in {args.train}", file=sys.stderr)
        return 2
    test_files = data_files(args.test)
    text_columns = [c.strip() for c in args.text_columns.split(",") if c.strip()]
    mapping, catalogue_labels = read_label_map(args.labels)
    if mapping:
        work = Path(tempfile.mkdtemp(prefix="mapped-inputs-"))
        train_files = [mapped_copy(p, work / "train", label_column=args.label_column, mapping=mapping)
                       for p in train_files]
        test_files = [mapped_copy(p, work / "test", label_column=args.label_column, mapping=mapping)
                      for p in test_files]
    base_labels = set(read_labelled(train_files[0], text_columns=text_columns,
                                    label_column=args.label_column).labels)
    feedback, skipped = read_feedback(data_files(args.feedback), labels=base_labels | catalogue_labels,
                                      weight=recipe.feedback_weight)
    logging.getLogger("model_build").info("feedback items: %d used, %d skipped; label map: %d entries",
                                          len(feedback), skipped, len(mapping))
    result = build(BuildRequest(
        train_files=train_files, test_file=test_files[0] if test_files else None, bundle_dir=args.model_dir,
        recipe=recipe, text_columns=text_columns, label_column=args.label_column, extra_train=feedback,
        oos_label=args.oos_label or None, progress=False, choose_recipe=args.recipe == "auto",
        budget_seconds=args.budget_seconds or DEFAULT_BUDGET_SECONDS,
    ))
    print(json.dumps({"version": result.version, "accuracy": result.metrics["accuracy"],
                      "macro_f1": result.metrics["macro_f1"], "feedback_items": len(feedback)}))
    return 0


if __name__ == "__main__":
    # SageMaker runs this file as a script: make the sibling packages importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
