"""What the registry stores: model records and decisions (plain data, JSON in and out)."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    PUBLISHED = "published"  # a bundle made champion by hand (first deploy, the local stack)
    PROMOTED = "promoted"  # a candidate passed the gate
    REJECTED = "rejected"  # a candidate failed the gate (or could not be verified)
    FORCED = "forced"  # a person promoted a version over (or without) the gate
    ROLLED_BACK = "rolled_back"  # a person put an earlier champion back
    TRAINING_FAILED = "training_failed"  # the job ended Failed or Stopped: no candidate


class Origin(StrEnum):
    """Where a registered model came from (`source["kind"]` of its record)."""

    TRAINING_JOB = "training_job"  # a retraining job's output (feedback + base data)
    PUBLISHED = "published"  # a local bundle published by hand (first deploy, the local stack)
    REBUILD = "rebuild"  # the base data built again with another recipe (`make up`'s background build)
    UNKNOWN = "unknown"


# Decisions that settle what became of a candidate version (the gate's, or a person's).
VERSION_VERDICTS = frozenset({Action.PROMOTED, Action.REJECTED, Action.FORCED, Action.PUBLISHED})
# Decisions after which the champion pointer names `version`.
CHAMPION_CHANGES = frozenset({Action.PUBLISHED, Action.PROMOTED, Action.FORCED, Action.ROLLED_BACK})


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Decision:
    action: Action
    version: str | None  # the candidate, or the version that became champion
    previous_champion: str | None
    actor: str  # "promote-function", an IAM principal ARN, "local:<user>"
    reasons: tuple[str, ...]
    job_name: str | None = None
    candidate_metrics: dict[str, Any] | None = None
    champion_metrics: dict[str, Any] | None = None
    checks: tuple[dict[str, Any], ...] = ()
    label_changes: tuple[str, ...] = ()  # promoted: the catalogue changes it made live ("add 'mortgage'", ...)
    at: str = field(default_factory=utc_now)
    decision_id: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def champion_after(self) -> str | None:
        return self.version if self.action in CHAMPION_CHANGES else self.previous_champion

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = self.action.value
        data["reasons"] = list(self.reasons)
        data["checks"] = list(self.checks)
        data["label_changes"] = list(self.label_changes)
        data["champion_after"] = self.champion_after
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decision:
        return cls(
            action=Action(data["action"]), version=data.get("version"),
            previous_champion=data.get("previous_champion"), actor=str(data.get("actor", "")),
            reasons=tuple(data.get("reasons", ())), job_name=data.get("job_name"),
            candidate_metrics=data.get("candidate_metrics"), champion_metrics=data.get("champion_metrics"),
            checks=tuple(data.get("checks", ())), label_changes=tuple(data.get("label_changes", ())),
            at=data["at"], decision_id=data.get("decision_id", ""),
        )


@dataclass(frozen=True)
class ModelRecord:
    """models/<version>/manifest.json: the bundle's own manifest plus what the registry knows about it."""

    version: str
    key: str  # models/<version>/model.tar.gz
    registered_at: str
    labels: tuple[str, ...] | None  # None for records written without it (read labels.json from the bundle)
    bundle_manifest: dict[str, Any]
    source: dict[str, Any]  # {"kind": Origin, ...}: the job_name and feedback_until of a training job

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.bundle_manifest.get("metrics", {}))

    @property
    def origin(self) -> Origin:
        try:
            return Origin(self.source.get("kind", Origin.UNKNOWN))
        except ValueError:
            return Origin.UNKNOWN

    @property
    def feedback_until(self) -> str | None:
        return self.source.get("feedback_until")

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "key": self.key, "registered_at": self.registered_at,
                "labels": list(self.labels) if self.labels is not None else None,
                "bundle_manifest": self.bundle_manifest, "source": self.source}

    @classmethod
    def from_json(cls, data: dict[str, Any], *, key: str) -> ModelRecord:
        if "bundle_manifest" not in data:  # a bare bundle manifest uploaded beside the tarball
            return cls(version=str(data["version"]), key=key, registered_at=str(data.get("created", "")),
                       labels=None, bundle_manifest=data, source={"kind": Origin.UNKNOWN.value})
        labels = data.get("labels")
        return cls(version=str(data["version"]), key=str(data.get("key", key)),
                   registered_at=str(data.get("registered_at", "")),
                   labels=tuple(labels) if labels is not None else None,
                   bundle_manifest=dict(data["bundle_manifest"]), source=dict(data.get("source", {})))
