"""`categorizer review`: the review queue for people who live in a shell.

`categorizer review` works the queue one item at a time, like the console's Review page: it claims the next
open item (a lease, so two reviewers never hold the same one), shows the text with the words that moved the
model highlighted, the top-k as numbered choices, and records what you type as the decision. `review list`
prints the open items; `review decide` claims and decides one item by id, for scripts.

Everything goes through the API with your token (the demo user's on the local stack, or CATEGORIZER_USERNAME /
CATEGORIZER_PASSWORD), so the API's rules apply unchanged: the `reviewers` group, the label rule, idempotent
decisions that become feedback with source `review`. The loop is a plain function over a `Transport` so tests
drive it against the real handler.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from categorizer_cli.stack_client import Stack, StackError

ORDERS = ("uncertain", "novel", "recent")
PAGE = 20  # items fetched per listing in the one-by-one mode
MAX_CHOICES = 9  # keys 1-9
HELP = "1-9 pick · Enter accept · /WORD search labels · c LABEL correct · s skip · q quit"


class Transport(Protocol):
    def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]: ...


class ReviewApiError(StackError):
    """The API refused a review call; the message is its own."""

    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.status, self.code = status, error.get("code", "")
        self.details = error.get("details")
        super().__init__(f"{status} {self.code}: {error.get('message') or body}")


@dataclass
class ReviewApi:
    """The review routes, through any transport (HTTP to a stage, or the handler in tests)."""

    call: Transport

    def _ok(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, answer = self.call(method, path, body)
        if status != expect:
            raise ReviewApiError(status, answer)
        return answer

    def page(self, *, order: str, label: str | None = None, source: str | None = None, limit: int = PAGE,
             cursor: str | None = None) -> dict:
        query = {"order": order, "limit": str(limit), **({"label": label} if label else {}),
                 **({"source": source} if source else {}), **({"cursor": cursor} if cursor else {})}
        return self._ok("GET", "/v1/review?" + urllib.parse.urlencode(query))

    def claim(self, item_id: str) -> dict:
        return self._ok("POST", f"/v1/review/{item_id}/claim", {})

    def decide(self, item_id: str, decision: str, label: str | None = None) -> dict:
        return self._ok("POST", f"/v1/review/{item_id}", {"decision": decision, **({"label": label} if label else {})})

    def labels(self) -> list[str]:
        """Every label a decision may name (active and proposed); [] if this token may not read them."""
        status, body = self.call("GET", "/v1/labels")
        if status == 200:
            return [e["name"] for e in body["labels"] if e["status"] in ("active", "proposed")]
        status, body = self.call("GET", "/v1/model")
        return list(body.get("labels", [])) if status == 200 and isinstance(body, dict) else []


def stack_transport(stack: Stack, token: str) -> Transport:
    return lambda method, path, body=None: stack.api(method, path, token=token, body=body)


# ---------------------------------------------------------------------------------------------- one by one

class Outcome(StrEnum):
    ACCEPTED = "accept"
    CORRECTED = "correct"
    SKIPPED = "skip"


class Stop(StrEnum):
    EMPTY = "the queue is empty"
    LIMIT = "decided as many as asked"
    QUIT = "stopped"


@dataclass
class Tally:
    stopped: Stop = Stop.EMPTY
    decided: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    held_by_others: int = 0
    gone: int = 0  # decided or expired between the listing and the claim

    @property
    def reviewed(self) -> int:
        return self.decided[Outcome.ACCEPTED] + self.decided[Outcome.CORRECTED]

    def summary(self) -> str:
        parts = [f"{self.decided[o]} {word}" for o, word in ((Outcome.ACCEPTED, "accepted"),
                                                              (Outcome.CORRECTED, "corrected"),
                                                              (Outcome.SKIPPED, "skipped"))]
        if self.held_by_others:
            parts.append(f"{self.held_by_others} held by another reviewer")
        return f"{self.stopped.value}: " + ", ".join(parts)


@dataclass(frozen=True)
class Choice:
    """What a line typed at the prompt means."""

    outcome: Outcome | None  # None: not a decision (search, help, quit)
    label: str | None = None
    quit: bool = False
    search: str | None = None


def parse_answer(line: str, choices: list[str]) -> Choice | str:
    """A typed line -> a Choice, or a one-line reason it means nothing."""
    answer = line.strip()
    if answer == "":
        return Choice(Outcome.ACCEPTED)
    if answer in ("q", "quit"):
        return Choice(None, quit=True)
    if answer in ("s", "skip"):
        return Choice(Outcome.SKIPPED)
    if answer.startswith("/"):
        return Choice(None, search=answer[1:].strip())
    if answer.isdigit():
        index = int(answer)
        if 1 <= index <= len(choices):
            return Choice(Outcome.CORRECTED, label=choices[index - 1])
        return f"no choice {index}: pick 1-{len(choices)}"
    if answer[:2] in ("c ", "= "):
        return Choice(Outcome.CORRECTED, label=answer[2:].strip())
    return f"not understood: {answer!r} ({HELP})"


def highlighted(text: str, spans: list[dict] | None, *, ansi: bool) -> str:
    """The text with the explanation's words marked: bold on a terminal, [[word]] in a pipe or a log."""
    marks: list[tuple[int, int]] = []
    for span in spans or ():
        start = text.find(span["text"])
        end = start + len(span["text"])
        if start >= 0 and span["text"] and not any(s < end and start < e for s, e in marks):
            marks.append((start, end))
    before, after = ("\033[1;33m", "\033[0m") if ansi else ("[[", "]]")
    out, at = [], 0
    for start, end in sorted(marks):
        out += [text[at:start], before, text[start:end], after]
        at = end
    return "".join(out) + text[at:]


def describe(item: dict, *, ansi: bool) -> list[str]:
    source = item["source"]
    where = (f"file s3://{source['bucket']}/{source['key']} row {source['row']}" if source["kind"] == "file"
             else "api")
    flags = f"  OUT OF SCOPE (novelty {item['novelty']:.2f})" if item["out_of_scope"] else ""
    lines = [f"from {where} · seen {item['seen']}x · model {item['model_version']}",
             "  " + highlighted(item["text"], item.get("explanation"), ansi=ansi),
             f"  model says: {item['label']} ({item['confidence']:.2f}){flags}"]
    return lines


def choice_lines(labels: list[str], scores: dict[str, float]) -> list[str]:
    return [f"   {i} {label}" + (f"  {scores[label]:.2f}" if label in scores else "")
            for i, label in enumerate(labels, 1)]


def open_items(api: ReviewApi, *, order: str, label: str | None, source: str | None) -> Iterator[dict]:
    """Each open item once, page after page; then from the top again for items queued meanwhile, until a whole
    pass finds nothing new (items others decide meanwhile simply drop out of the listing)."""
    done: set[str] = set()
    cursor, fresh_this_pass = None, False
    while True:
        page = api.page(order=order, label=label, source=source, limit=PAGE, cursor=cursor)
        for item in page["items"]:
            if item["item_id"] not in done:
                done.add(item["item_id"])
                fresh_this_pass = True
                yield item
        if page["next"]:
            cursor = page["next"]
        elif fresh_this_pass:
            cursor, fresh_this_pass = None, False
        else:
            return


def work(api: ReviewApi, *, read: Callable[[str], str], write: Callable[[str], None], order: str = "uncertain",
         label: str | None = None, source: str | None = None, limit: int | None = None, ansi: bool = False) -> Tally:
    """Claim, show, decide, next: until the queue is empty, `limit` items are decided, or the reviewer quits."""
    tally = Tally()
    all_labels: list[str] | None = None
    for listed in open_items(api, order=order, label=label, source=source):
        if limit is not None and sum(tally.decided.values()) >= limit:
            tally.stopped = Stop.LIMIT
            break
        try:
            item = api.claim(listed["item_id"])
        except ReviewApiError as error:
            if error.status == 409 and (error.details or {}).get("reason") == "held":
                tally.held_by_others += 1
                continue
            if error.status in (404, 409):  # decided or expired since it was listed
                tally.gone += 1
                continue
            raise
        scores = {s["label"]: s["score"] for s in item["top_k"]}
        choices = [s["label"] for s in item["top_k"]][:MAX_CHOICES]
        write(f"\n[{tally.reviewed} reviewed] " + "\n".join(describe(item, ansi=ansi)))
        write("\n".join(choice_lines(choices, scores)))
        while True:
            try:
                answer = read(f"{HELP}\n> ")
            except EOFError:
                answer = "q"
            parsed = parse_answer(answer, choices)
            if isinstance(parsed, str):
                write(parsed)
                continue
            if parsed.quit:
                write(f"left item {item['item_id']} to the queue (your claim lapses in a few minutes)")
                tally.stopped = Stop.QUIT
                return tally
            if parsed.search is not None:
                if all_labels is None:
                    all_labels = api.labels()
                matches = [name for name in all_labels if parsed.search.lower() in name.lower()][:MAX_CHOICES]
                if not all_labels:
                    write("this token may not read the label list: type c LABEL")
                elif not matches:
                    write(f"no label contains {parsed.search!r}")
                else:
                    choices = matches
                    write("\n".join(choice_lines(choices, scores)))
                continue
            try:
                receipt = api.decide(item["item_id"], parsed.outcome.value, parsed.label)
            except ReviewApiError as error:
                if error.status == 422:  # a label the model does not know: say so, ask again
                    write(str(error))
                    continue
                raise
            outcome = parsed.outcome
            if outcome is Outcome.CORRECTED and receipt["label"] == item["label"]:
                outcome = Outcome.ACCEPTED  # picking the model's own label is accepting it
            tally.decided[outcome] += 1
            write(f"  -> {receipt['decision']}" + (f" {receipt['label']}" if receipt["label"] else ""))
            break
    return tally


# ------------------------------------------------------------------------------------------------- commands

def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--order", choices=ORDERS, default="uncertain",
                   help="uncertain: lowest confidence first (default); novel: out of scope first; recent")
    p.add_argument("--label", help="only items the model gave this label")
    p.add_argument("--source", choices=("api", "file"), help="only items from the API or from dropped files")
    p.add_argument("--outputs", type=Path, help="stack outputs file (default: .local/outputs.json)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser("review", help="work the review queue one item at a time (or: list, decide)",
                            description="Without a subcommand: claim, show and decide open items one at a time.")
    _filters(review)
    review.add_argument("--max", type=int, help="stop after deciding this many items")
    review.set_defaults(func=run_work)
    commands = review.add_subparsers(dest="review_command")

    p = commands.add_parser("list", help="the open items, most uncertain first")
    _filters(p)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_list)

    p = commands.add_parser("decide", help="claim and decide one item (for scripts)")
    p.add_argument("item_id")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--accept", action="store_true", help="the model's label is right")
    how.add_argument("--correct", metavar="LABEL", help="LABEL is right")
    how.add_argument("--skip", action="store_true", help="back to the queue")
    p.add_argument("--outputs", type=Path, help="stack outputs file (default: .local/outputs.json)")
    p.set_defaults(func=run_decide)


def _api(args: argparse.Namespace) -> ReviewApi:
    stack = Stack.load(args.outputs)
    return ReviewApi(stack_transport(stack, stack.user_token()))


def run_list(args: argparse.Namespace) -> int:
    page = _api(args).page(order=args.order, label=args.label, source=args.source, limit=args.limit)
    if args.json:
        print(json.dumps(page, indent=1, ensure_ascii=False))
        return 0
    if not page["items"]:
        print("the review queue is empty" + (" for these filters" if args.label or args.source else ""))
        return 0
    for item in page["items"]:
        flag = " OOS" if item["out_of_scope"] else ""
        text = item["text"] if len(item["text"]) <= 70 else item["text"][:67] + "..."
        print(f"{item['item_id']}  {item['confidence']:.2f}{flag:<4} {item['label']:<28} {item['source']['kind']:<4} "
              f"x{item['seen']}  {text}")
    print(f"{len(page['items'])} item(s)" + (" (more: raise --limit)" if page["next"] else ""))
    return 0


def run_decide(args: argparse.Namespace) -> int:
    api = _api(args)
    api.claim(args.item_id)
    decision = "accept" if args.accept else "skip" if args.skip else "correct"
    receipt = api.decide(args.item_id, decision, args.correct)
    print(json.dumps(receipt))
    return 0


def run_work(args: argparse.Namespace) -> int:
    ansi = sys.stdout.isatty()
    tally = work(_api(args), read=input, write=print, order=args.order, label=args.label, source=args.source,
                 limit=args.max, ansi=ansi)
    print(tally.summary())
    return 0
