"""The label catalogue: the serving champion's labels plus every change made since, with who, when and why.

Why a catalogue: a label set frozen at the first build cannot follow a product. Labels are added (`proposed`
with example texts), renamed, merged and retired through the API; each change is *recorded* at once and made
*live* by the next promotion, so the champion always serves its own labels and the gate judges every change.

How it is kept: one JSON document in the model bucket (`names.LABEL_CATALOGUE_KEY`), written only with S3
conditional writes (If-Match on the ETag read, If-None-Match for the first write). Two admins racing cannot
both win: the loser re-reads and re-applies its change (which may now be refused, e.g. a duplicate name), so
no change is lost. The history inside the document is append-only; the bucket is versioned besides.

History is never rewritten: feedback keeps the label it was sent with. `LabelMap` (old name -> current name,
or None for a retired label without replacement) is applied when training data is exported and when models
are compared, never to what is stored.

Everything here but `CatalogueStore` is plain functions on frozen data.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from categorizer.adapters.model_registry_bucket import ModelBucket, WriteConflictError
from categorizer.contract import names
from categorizer.registry.records import utc_now

NAME_RE = re.compile(names.LABEL_NAME_PATTERN)
FORMAT_VERSION = 1


class LabelStatus(StrEnum):
    ACTIVE = "active"  # the champion serves it
    PROPOSED = "proposed"  # recorded with examples; trained by the next job; active once a candidate is promoted
    RETIRED = "retired"  # renamed, merged or retired by a promotion; `replaced_by` says where its items go


class ChangeAction(StrEnum):
    SEED = "seed"  # the catalogue was started from the champion's labels
    ADD = "add"
    RENAME = "rename"
    MERGE = "merge"
    RETIRE = "retire"
    MADE_LIVE = "made_live"  # a promotion made the recorded changes live


# --- errors (the API maps them: api/error_table.py) ---------------------------------------------------------


class LabelError(Exception):
    details: dict[str, Any] | None = None


class InvalidLabelNameError(LabelError):
    def __init__(self, name: str) -> None:
        super().__init__(f"label name {name!r} is not allowed: 1-{names.LABEL_NAME_MAX} letters, digits, "
                         "`_ - . ? /` and inner spaces")
        self.details = {"name": name, "pattern": names.LABEL_NAME_PATTERN}


class LabelExistsError(LabelError):
    def __init__(self, name: str, existing: str, status: str) -> None:
        super().__init__(f"a label named {existing!r} ({status}) already exists; names are unique regardless "
                         "of case, retired ones included")
        self.details = {"name": name, "existing": existing, "status": status}


class LabelNotFoundError(LabelError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no label {name!r} in the catalogue")
        self.details = {"name": name}


class LabelChangeConflictError(LabelError):
    """The change does not fit the label's state (retired, a change already pending, merge into itself...)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class UnknownLabelError(LabelError):
    def __init__(self, unknown: dict[str, str], valid: Sequence[str]) -> None:
        names_ = ", ".join(f"{field_}={value!r}" for field_, value in unknown.items())
        super().__init__(f"unknown label(s): {names_}; see details.valid_labels")
        self.details = {"unknown": unknown, "valid_labels": list(valid)}


class RetiredLabelError(LabelError):
    def __init__(self, name: str, replaced_by: str | None) -> None:
        then = f"use {replaced_by!r} instead" if replaced_by else "it has no replacement"
        super().__init__(f"label {name!r} is retired: {then}")
        self.details = {"label": name, "replaced_by": replaced_by}


class CatalogueUnavailableError(LabelError):
    """No registry to keep a catalogue in (a deployment serving a local bundle)."""


# --- data ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """A recorded rename / merge / retire waiting for the next promotion."""

    change_id: str
    action: ChangeAction
    to: str | None  # the new name, the label merged into, or the replacement (None: retired without one)

    def describe(self, name: str) -> str:
        if self.action is ChangeAction.RENAME:
            return f"rename {name!r} to {self.to!r}"
        if self.action is ChangeAction.MERGE:
            return f"merge {name!r} into {self.to!r}"
        return f"retire {name!r}" + (f", replaced by {self.to!r}" if self.to else " without replacement")


@dataclass(frozen=True)
class LabelEntry:
    name: str
    description: str
    status: LabelStatus
    examples: tuple[str, ...] = ()
    replaced_by: str | None = None  # retired: where its items go (None: dropped)
    retired_by: ChangeAction | None = None  # retired: rename / merge (feedback still accepted) or retire
    pending: Pending | None = None
    added_at: str | None = None
    added_by: str | None = None

    @property
    def live(self) -> bool:
        return self.status is not LabelStatus.RETIRED

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["examples"] = list(self.examples)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabelEntry:
        pending = data.get("pending")
        return cls(name=data["name"], description=data.get("description") or "", status=LabelStatus(data["status"]),
                   examples=tuple(data.get("examples") or ()), replaced_by=data.get("replaced_by"),
                   retired_by=ChangeAction(data["retired_by"]) if data.get("retired_by") else None,
                   pending=Pending(pending["change_id"], ChangeAction(pending["action"]), pending.get("to"))
                   if pending else None,
                   added_at=data.get("added_at"), added_by=data.get("added_by"))


@dataclass(frozen=True)
class Change:
    action: ChangeAction
    label: str | None
    actor: str
    to: str | None = None
    reason: str = ""
    version: str | None = None  # made_live: the model that made it live; seed: the champion seeded from
    details: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=utc_now)
    change_id: str = field(default_factory=lambda: secrets.token_hex(6))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        return cls(**{**data, "action": ChangeAction(data["action"])})


@dataclass(frozen=True)
class Catalogue:
    revision: int
    champion: str | None  # the model whose labels `active` describes
    labels: tuple[LabelEntry, ...]
    history: tuple[Change, ...] = ()

    # -- lookups
    def get(self, name: str) -> LabelEntry | None:
        return next((e for e in self.labels if e.name == name), None)

    def require(self, name: str) -> LabelEntry:
        entry = self.get(name)
        if entry is None:
            raise LabelNotFoundError(name)
        return entry

    def taken(self, name: str) -> tuple[str, str] | None:
        """The existing name (and its status) that `name` collides with, case-insensitively."""
        folded = name.casefold()
        for entry in self.labels:
            if entry.name.casefold() == folded:
                return entry.name, entry.status.value
            if entry.pending and entry.pending.action is ChangeAction.RENAME and entry.pending.to \
                    and entry.pending.to.casefold() == folded:
                return entry.pending.to, f"pending rename of {entry.name}"
        return None

    def pending_changes(self) -> list[tuple[str, Pending]]:
        return [(e.name, e.pending) for e in self.labels if e.pending]

    def label_map(self) -> LabelMap:
        return LabelMap.of(self)

    def target_labels(self) -> tuple[str, ...]:
        """The label set the next model is trained for: live labels, after the recorded changes."""
        out = [e.name for e in self.labels if e.live and e.pending is None]
        out += [e.pending.to for e in self.labels
                if e.pending and e.pending.action is ChangeAction.RENAME and e.pending.to]
        return tuple(sorted(set(out)))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "revision": self.revision, "champion": self.champion,
                "labels": [e.to_json() for e in self.labels], "history": [c.to_json() for c in self.history]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Catalogue:
        return cls(revision=int(data["revision"]), champion=data.get("champion"),
                   labels=tuple(LabelEntry.from_json(e) for e in data.get("labels") or ()),
                   history=tuple(Change.from_json(c) for c in data.get("history") or ()))

    def _with(self, labels: Iterable[LabelEntry], change: Change, **changes: Any) -> Catalogue:
        return replace(self, revision=self.revision + 1, labels=tuple(labels), history=(*self.history, change),
                       **changes)


@dataclass(frozen=True)
class LabelMap:
    """Old name -> name the next model uses (None: drop). Names it does not mention map to themselves."""

    mapping: dict[str, str | None]

    @classmethod
    def of(cls, catalogue: Catalogue) -> LabelMap:
        direct: dict[str, str | None] = {}
        for entry in catalogue.labels:
            if entry.pending is not None:
                direct[entry.name] = entry.pending.to
            elif entry.status is LabelStatus.RETIRED:
                direct[entry.name] = entry.replaced_by
        resolved: dict[str, str | None] = {}
        for name in direct:
            target: str | None = name
            for _ in range(len(direct) + 1):  # follow chains (a -> b merged, b -> c renamed later)
                if target is None or target not in direct:
                    break
                target = direct[target]
            resolved[name] = target
        return cls(resolved)

    def __call__(self, label: str) -> str | None:
        return self.mapping.get(label, label)

    def to_json(self) -> dict[str, str | None]:
        return dict(sorted(self.mapping.items()))

    @property
    def dropped(self) -> tuple[str, ...]:
        return tuple(sorted(k for k, v in self.mapping.items() if v is None))


# --- changes ------------------------------------------------------------------------------------------------


def seed(labels: Iterable[str], *, champion: str | None, actor: str) -> Catalogue:
    now = utc_now()
    entries = tuple(LabelEntry(name=label, description="", status=LabelStatus.ACTIVE, added_at=now, added_by=actor)
                    for label in sorted(set(labels)))
    return Catalogue(revision=1, champion=champion, labels=entries, history=(Change(
        ChangeAction.SEED, None, actor, version=champion, reason="started from the champion's labels",
        details={"labels": len(entries)}, at=now),))


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidLabelNameError(str(name))
    return name


def propose(catalogue: Catalogue, *, name: str, description: str, examples: Sequence[str], actor: str,
            reason: str = "", min_examples: int = names.LABEL_MIN_EXAMPLES) -> Catalogue:
    """A proposed label. `min_examples`: 1 when a reviewer proposes it from the item in front of them (the
    item is its first example; reviewers assign more, and the gate waits for enough held-out items)."""
    check_name(name)
    clash = catalogue.taken(name)
    if clash:
        raise LabelExistsError(name, *clash)
    texts = tuple(dict.fromkeys(t.strip() for t in examples if t and t.strip()))
    if len(texts) < min_examples:
        raise LabelChangeConflictError(f"a new label needs at least {min_examples} different, "
                                       f"non-empty example texts ({len(texts)} given)", name=name,
                                       examples=len(texts))
    change = Change(ChangeAction.ADD, name, actor, reason=reason, details={"examples": len(texts)})
    entry = LabelEntry(name=name, description=description.strip(), status=LabelStatus.PROPOSED, examples=texts,
                       added_at=change.at, added_by=actor)
    return catalogue._with((*catalogue.labels, entry), change)


def _changeable(catalogue: Catalogue, name: str) -> LabelEntry:
    entry = catalogue.require(name)
    if not entry.live:
        raise LabelChangeConflictError(f"label {name!r} is already retired"
                                       + (f" (replaced by {entry.replaced_by!r})" if entry.replaced_by else ""),
                                       label=name, replaced_by=entry.replaced_by)
    if entry.pending:
        raise LabelChangeConflictError(f"label {name!r} already has a change waiting for the next promotion: "
                                       f"{entry.pending.describe(name)}", label=name)
    return entry


def _target(catalogue: Catalogue, name: str, into: str, role: str) -> LabelEntry:
    if into == name:
        raise LabelChangeConflictError(f"cannot {role} {name!r} into itself", label=name)
    target = catalogue.get(into)
    if target is None:
        raise LabelChangeConflictError(f"{role} target {into!r} is not a label in the catalogue", label=name,
                                       target=into)
    if not target.live or target.pending:
        raise LabelChangeConflictError(f"{role} target {into!r} is retired or has a change of its own waiting",
                                       label=name, target=into)
    return target


def _record(catalogue: Catalogue, name: str, action: ChangeAction, to: str | None, actor: str,
            reason: str) -> Catalogue:
    change = Change(action, name, actor, to=to, reason=reason)
    pending = Pending(change.change_id, action, to)
    return catalogue._with((replace(e, pending=pending) if e.name == name else e for e in catalogue.labels), change)


def rename(catalogue: Catalogue, name: str, *, to: str, actor: str, reason: str = "") -> Catalogue:
    _changeable(catalogue, name)
    check_name(to)
    clash = catalogue.taken(to)
    if clash:
        raise LabelExistsError(to, *clash)
    return _record(catalogue, name, ChangeAction.RENAME, to, actor, reason)


def merge(catalogue: Catalogue, name: str, *, into: str, actor: str, reason: str = "") -> Catalogue:
    _changeable(catalogue, name)
    _target(catalogue, name, into, "merge")
    return _record(catalogue, name, ChangeAction.MERGE, into, actor, reason)


def retire(catalogue: Catalogue, name: str, *, replaced_by: str | None, actor: str, reason: str = "") -> Catalogue:
    _changeable(catalogue, name)
    if replaced_by is not None:
        _target(catalogue, name, replaced_by, "replace")
    return _record(catalogue, name, ChangeAction.RETIRE, replaced_by, actor, reason)


def make_live(catalogue: Catalogue, snapshot: Catalogue | None, *, version: str, model_labels: Sequence[str],
              actor: str) -> tuple[Catalogue, tuple[str, ...]]:
    """A promotion: what the job's catalogue snapshot recorded becomes live; later changes stay pending.

    Returns the new catalogue and the changes made live, in words (for the decision record).
    """
    model = set(model_labels)
    snap_pending = {p.change_id for _, p in (snapshot.pending_changes() if snapshot else [])}
    snap_proposed = {e.name for e in (snapshot.labels if snapshot else ()) if e.status is LabelStatus.PROPOSED}
    made: list[str] = []
    entries: list[LabelEntry] = []
    added: list[LabelEntry] = []
    for entry in catalogue.labels:
        if entry.pending and entry.pending.change_id in snap_pending:
            pending = entry.pending
            made.append(pending.describe(entry.name))
            entries.append(replace(entry, status=LabelStatus.RETIRED, replaced_by=pending.to,
                                   retired_by=pending.action, pending=None))
            if pending.action is ChangeAction.RENAME and pending.to:
                added.append(LabelEntry(name=pending.to, description=entry.description, status=LabelStatus.ACTIVE,
                                        added_at=utc_now(), added_by=actor))
        elif entry.status is LabelStatus.PROPOSED and entry.name in snap_proposed and entry.name in model:
            made.append(f"add {entry.name!r}")
            entries.append(replace(entry, status=LabelStatus.ACTIVE))
        else:
            entries.append(entry)
    change = Change(ChangeAction.MADE_LIVE, None, actor, version=version, reason="promotion",
                    details={"changes": made, "snapshot_revision": snapshot.revision if snapshot else None})
    return catalogue._with((*entries, *added), change, champion=version), tuple(made)


# --- reading it against what serves -------------------------------------------------------------------------


def check_feedback_labels(catalogue: Catalogue | None, *, predicted_label: str, correct_label: str,
                          serving_labels: Sequence[str]) -> None:
    """The one rule for a correction's labels (POST /v1/feedback and review decisions alike).

    `correct_label`: any active or proposed label, a pending rename's new name, or a renamed / merged label
    (mapped to its new name when exported); a retired label (or one whose retirement is recorded) is refused
    naming its replacement. `predicted_label`: any label a model of this stage could have predicted.
    """
    serving = set(serving_labels)
    entry = catalogue.get(correct_label) if catalogue else None
    if entry is not None:
        retiring = entry.pending and entry.pending.action is ChangeAction.RETIRE
        if retiring or (not entry.live and entry.retired_by is ChangeAction.RETIRE):
            raise RetiredLabelError(correct_label, entry.pending.to if retiring and entry.pending
                                    else entry.replaced_by)
    known = serving | ({e.name for e in catalogue.labels} | set(catalogue.target_labels()) if catalogue else set())
    unknown = {field_: value for field_, value in (("predicted_label", predicted_label),
                                                   ("correct_label", correct_label)) if value not in known}
    if unknown:
        valid = sorted(set(catalogue.target_labels()) | {e.name for e in catalogue.labels if e.live}) \
            if catalogue else sorted(serving)
        raise UnknownLabelError(unknown, valid)


def mismatch_notes(catalogue: Catalogue, *, champion: str | None, champion_labels: Sequence[str]) -> list[str]:
    """Why the catalogue and the serving champion disagree (a rollback, a forced or published model), in words.

    Nothing is changed: the champion serves what it knows, feedback is still checked against the catalogue, and
    the next candidate is trained for the catalogue's labels (a label the champion lacks is judged as new).
    """
    if champion is None:
        return []
    notes = []
    if catalogue.champion and catalogue.champion != champion:
        notes.append(f"the catalogue was last made live by {catalogue.champion} but {champion} serves "
                     "(a rollback, or a model promoted outside the loop)")
    live_active = {e.name for e in catalogue.labels if e.status is LabelStatus.ACTIVE}
    serving = set(champion_labels)
    lacking = sorted(live_active - serving)
    if lacking:
        notes.append(f"{champion} cannot predict active label(s) {lacking[:10]}; the next candidate is trained for "
                     "them and checked on them as new labels")
    label_map = catalogue.label_map()
    stale = sorted(label for label in serving - live_active if catalogue.get(label) is not None
                   and not catalogue.require(label).live)
    if stale:
        notes.append(f"{champion} still predicts retired label(s) {stale[:10]}; their items are exported as "
                     f"{[label_map(s) for s in stale[:10]]} and a candidate holding them is rejected")
    unknown = sorted(label for label in serving if catalogue.get(label) is None and label not in live_active)
    if unknown:
        notes.append(f"{champion} predicts label(s) the catalogue never had {unknown[:10]}; they are accepted "
                     "in feedback and kept in training")
    return notes


# --- the stored document ------------------------------------------------------------------------------------


class CatalogueStore:
    """Read and change the catalogue with conditional writes (retrying a lost race by re-applying the change)."""

    ATTEMPTS = 8

    def __init__(self, bucket: ModelBucket, key: str = names.LABEL_CATALOGUE_KEY) -> None:
        self.bucket = bucket
        self.key = key

    def read(self) -> Catalogue | None:
        data = self.bucket.get_json(self.key)
        return Catalogue.from_json(data) if data else None

    def update(self, change: Callable[[Catalogue | None], Catalogue]) -> Catalogue:
        """Apply `change` to the stored catalogue (None when there is none yet) and store the result.

        A concurrent writer makes the conditional write fail: the change is applied again to what that writer
        stored (and may be refused now, e.g. the other admin took the name)."""
        for _ in range(self.ATTEMPTS):
            data, etag = self.bucket.get_json_tagged(self.key)
            current = Catalogue.from_json(data) if data else None
            updated = change(current)
            try:
                self.bucket.put_json_if(self.key, updated.to_json(), etag=etag)
            except WriteConflictError:
                continue
            return updated
        raise LabelChangeConflictError("the catalogue kept changing under this request; try again")
