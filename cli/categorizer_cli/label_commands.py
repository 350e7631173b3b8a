"""`categorizer labels list|add|rename|merge|retire`: the label catalogue from the command line.

Like `categorizer model ...`, it works on the stage's registry through its outputs file (the model bucket),
with your AWS identity (or local:<user> on the local stack) recorded as who made the change. The rules are the
API's (registry/catalogue.py): a change is recorded now and made live by the next promotion.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from categorizer_cli.catalogue_view import catalogue_view, print_catalogue, store_and_champion
from categorizer_cli.registry_commands import _with_outputs, actor_for, registry_for
from categorizer_cli.stack_client import Stack


def add_parsers(sub: argparse._SubParsersAction) -> None:
    labels = sub.add_parser("labels", help="the label catalogue: list, add, rename, merge, retire").add_subparsers(
        dest="labels_command", required=True)
    p = _with_outputs(labels.add_parser("list", help="every label: status, examples, pending changes"))
    p.add_argument("--json", action="store_true")
    p.add_argument("--history", type=int, default=0, help="also show the last N changes")
    p.set_defaults(func=run_list)

    p = _with_outputs(labels.add_parser("add", help="propose a new label with example texts"))
    p.add_argument("name")
    p.add_argument("--examples", type=Path, required=True,
                   help="a .txt file (one text a line), or .csv / .jsonl / .json with a `text` column")
    p.add_argument("--description", default="")
    _change_flags(p)
    p.set_defaults(func=run_add)

    p = _with_outputs(labels.add_parser("rename", help="rename NAME to TO at the next promotion"))
    p.add_argument("name")
    p.add_argument("to")
    _change_flags(p)
    p.set_defaults(func=run_rename)

    p = _with_outputs(labels.add_parser("merge", help="merge NAME into INTO at the next promotion"))
    p.add_argument("name")
    p.add_argument("into")
    _change_flags(p)
    p.set_defaults(func=run_merge)

    p = _with_outputs(labels.add_parser("retire", help="retire NAME at the next promotion"))
    p.add_argument("name")
    p.add_argument("--replaced-by", help="where its items go (default: dropped from training)")
    _change_flags(p)
    p.set_defaults(func=run_retire)


def _change_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reason", default="", help="why (kept in the catalogue's history)")
    p.add_argument("--by", help="who (default: your AWS identity, or local:<user> on the local stack)")


def read_examples(path: Path) -> list[str]:
    from categorizer.registry.evaluation import EvaluationDataError

    raw = path.read_bytes()
    if path.suffix.lower() == ".txt":
        return [line.strip() for line in raw.decode("utf-8-sig").splitlines() if line.strip()]
    import csv
    import io

    text = raw.decode("utf-8-sig")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    elif path.suffix.lower() == ".json":
        rows = json.loads(text)
    else:
        raise EvaluationDataError(f"{path.name}: use .txt (one text a line), .csv, .jsonl or .json")
    if rows and not all(isinstance(r, dict) and "text" in r for r in rows):
        raise EvaluationDataError(f"{path.name}: every record needs a `text` field")
    return [str(r["text"]).strip() for r in rows if str(r.get("text") or "").strip()]


def _change(args: argparse.Namespace, apply) -> int:
    from categorizer.registry import catalogue as cat

    stack = Stack.load(args.outputs)
    store, champion, labels = store_and_champion(registry_for(stack))
    if champion is None:
        raise cat.CatalogueUnavailableError("no champion yet: publish a model first (its labels start the "
                                            "catalogue)")
    actor = actor_for(stack, args.by)
    updated = store.update(lambda current: apply(current or cat.seed(labels, champion=champion, actor=actor), actor))
    change = updated.history[-1]
    print(f"recorded (revision {updated.revision}): {change.action.value} {change.label!r}"
          + (f" -> {change.to!r}" if change.to else "") + " by " + change.actor
          + "; live at the next promotion (`categorizer retrain`)")
    return 0


def run_add(args: argparse.Namespace) -> int:
    from categorizer.registry import catalogue as cat

    examples = read_examples(args.examples)
    return _change(args, lambda c, actor: cat.propose(c, name=args.name, description=args.description,
                                                      examples=examples, actor=actor, reason=args.reason))


def run_rename(args: argparse.Namespace) -> int:
    from categorizer.registry import catalogue as cat

    return _change(args, lambda c, actor: cat.rename(c, args.name, to=args.to, actor=actor, reason=args.reason))


def run_merge(args: argparse.Namespace) -> int:
    from categorizer.registry import catalogue as cat

    return _change(args, lambda c, actor: cat.merge(c, args.name, into=args.into, actor=actor, reason=args.reason))


def run_retire(args: argparse.Namespace) -> int:
    from categorizer.registry import catalogue as cat

    return _change(args, lambda c, actor: cat.retire(c, args.name, replaced_by=args.replaced_by, actor=actor,
                                                     reason=args.reason))


def run_list(args: argparse.Namespace) -> int:
    view = catalogue_view(registry_for(Stack.load(args.outputs)))
    if args.json:
        print(json.dumps(view, indent=1))
        return 0
    print_catalogue(view, history=args.history)
    active = [label["name"] for label in view["labels"] if label["status"] == "active"]
    print(f"  active: {', '.join(active[:80])}" + (" ..." if len(active) > 80 else ""))
    return 0
