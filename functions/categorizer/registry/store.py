"""The model registry: bundles under models/<version>/, the champion pointer, and the decision log.

Decisions are JSON objects under decisions/ in the model bucket, one per event, named
`<UTC time>-<action>-<version>-<id>.json` so that a prefix listing returns them in time order. Why S3 and not
a table: a few decisions a week, always read whole (`categorizer model list`, the rollback history), written
next to the bundles they talk about, in a versioned bucket (an overwrite or delete keeps the old record),
with grants infra already scopes per prefix. No second store to provision, back up or emulate.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from categorizer.adapters.champion_parameter import ChampionParameter
from categorizer.adapters.model_registry_bucket import ModelBucket
from categorizer.contract import RegistrySettings
from categorizer.contract.names import DECISIONS_PREFIX, MODELS_PREFIX
from categorizer.engine import Bundle, BundleError, load_bundle
from categorizer.engine.bundle import extract_bundle
from categorizer.model_store import ChampionPointer
from categorizer.observability import logger
from categorizer.registry.records import (
    CHAMPION_CHANGES,
    VERSION_VERDICTS,
    Action,
    Decision,
    ModelRecord,
    Origin,
    utc_now,
)

MANIFEST_NAME = "manifest.json"
TARBALL_NAME = "model.tar.gz"


def registry_cache_dir(model_cache_dir: str) -> Path:
    """Beside the serving model store's cache, never inside it: the store deletes what it does not serve."""
    serving = Path(model_cache_dir)
    return serving.with_name(f"{serving.name}-registry")


class RegistryError(Exception):
    """A registry operation cannot be done as asked (unknown version, nothing to roll back to, ...)."""


class ModelRegistry:
    def __init__(self, bucket: ModelBucket, champion: ChampionParameter, *, models_prefix: str = MODELS_PREFIX,
                 decisions_prefix: str = DECISIONS_PREFIX) -> None:
        self.bucket = bucket
        self.champion_parameter = champion
        self.models_prefix = models_prefix
        self.decisions_prefix = decisions_prefix

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> ModelRegistry:
        return cls(ModelBucket(settings.model_bucket), ChampionParameter(settings.champion_parameter),
                   decisions_prefix=settings.decisions_prefix)

    # ------------------------------------------------------------------ keys
    def tarball_key(self, version: str) -> str:
        return f"{self.models_prefix}{version}/{TARBALL_NAME}"

    def manifest_key(self, version: str) -> str:
        return f"{self.models_prefix}{version}/{MANIFEST_NAME}"

    def decision_key(self, decision: Decision) -> str:
        stamp = re.sub(r"[-:.]", "", decision.at)
        return f"{self.decisions_prefix}{stamp}-{decision.action.value}-{decision.version or 'none'}-" \
               f"{decision.decision_id}.json"

    # ------------------------------------------------------------------ models
    def register(self, tarball: Path, bundle: Bundle, *, source: dict[str, Any]) -> ModelRecord:
        """Store a verified bundle as models/<version>/. Registering the same version again is a no-op."""
        existing = self.get(bundle.version)
        if existing is not None:
            return existing
        record = ModelRecord(version=bundle.version, key=self.tarball_key(bundle.version), registered_at=utc_now(),
                             labels=bundle.labels, bundle_manifest=bundle.manifest, source=source)
        self.bucket.upload_file(tarball, record.key)
        # The manifest goes last: a manifest always names a complete upload.
        self.bucket.put_json(self.manifest_key(bundle.version), record.to_json())
        logger.info("model registered", extra={"version": bundle.version, "source": source})
        return record

    def get(self, version: str) -> ModelRecord | None:
        data = self.bucket.get_json(self.manifest_key(version))
        return ModelRecord.from_json(data, key=self.tarball_key(version)) if data else None

    def require(self, version: str) -> ModelRecord:
        record = self.get(version)
        if record is None:
            known = ", ".join(r.version for r in self.list_models()[-5:]) or "none"
            raise RegistryError(f"no model {version!r} in the registry (latest: {known})")
        return record

    def list_models(self) -> list[ModelRecord]:
        """Every registered model, oldest first."""
        records = []
        for key in self.bucket.list_keys(self.models_prefix):
            if key.endswith(f"/{MANIFEST_NAME}") and key.count("/") == self.models_prefix.count("/") + 1:
                data = self.bucket.get_json(key)
                if data:
                    version = key[len(self.models_prefix):].split("/", 1)[0]
                    records.append(ModelRecord.from_json(data, key=self.tarball_key(version)))
        return sorted(records, key=lambda r: (r.registered_at, r.version))

    def fetch_bundle(self, version: str, cache_dir: Path) -> Bundle:
        """Download and verify a registered bundle into cache_dir/<version>/ (reused when it verifies)."""
        record = self.require(version)
        target = cache_dir / version / "bundle"
        if target.is_dir():
            try:
                return load_bundle(target)
            except BundleError:
                shutil.rmtree(target, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=_ensure(cache_dir)) as tmp:
            tarball = self.bucket.download_file(record.key, Path(tmp) / TARBALL_NAME)
            bundle_dir = extract_bundle(tarball, Path(tmp) / "bundle")
            bundle = load_bundle(bundle_dir)
            if bundle.version != version:
                raise BundleError(f"models/{version}/ holds a bundle that says version {bundle.version}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(bundle_dir), target)
        return load_bundle(target)

    @staticmethod
    def prune_cache(cache_dir: Path, *, keep: set[str]) -> None:
        """Drop cached bundles other than `keep` (a warm Lambda's /tmp is small and outlives invocations)."""
        if cache_dir.is_dir():
            for entry in cache_dir.iterdir():
                if entry.is_dir() and entry.name not in keep and not entry.name.startswith("tmp"):
                    shutil.rmtree(entry, ignore_errors=True)

    def labels_of(self, record: ModelRecord, cache_dir: Path) -> tuple[str, ...]:
        if record.labels is not None:
            return record.labels
        return self.fetch_bundle(record.version, cache_dir).labels

    def last_feedback_cutoff(self) -> str | None:
        """The newest feedback time any registered model was trained with ("new feedback" starts after it)."""
        cutoffs = [r.feedback_until for r in self.list_models() if r.feedback_until]
        return max(cutoffs) if cutoffs else None

    def last_catalogue_revision(self) -> int:
        """The newest label-catalogue revision any registered model (promoted or rejected) was trained for."""
        revisions = [int(((r.source.get("export") or {}).get("catalogue_revision")) or 0) for r in self.list_models()]
        return max(revisions, default=0)

    # ------------------------------------------------------------------ champion
    def champion_pointer(self) -> ChampionPointer | None:
        raw = self.champion_parameter.read()
        if not raw:
            return None
        try:
            return ChampionPointer.parse(raw)
        except (ValueError, KeyError, TypeError):  # e.g. the "none" placeholder before the first publish
            return None

    def champion_version(self) -> str | None:
        pointer = self.champion_pointer()
        return pointer.version if pointer else None

    def _point_champion_at(self, version: str) -> None:
        record = self.require(version)
        self.champion_parameter.write(ChampionPointer(version=version, key=record.key).to_json())

    # ------------------------------------------------------------------ decisions
    def record(self, decision: Decision) -> Decision:
        self.bucket.put_json(self.decision_key(decision), decision.to_json())
        logger.info("decision recorded", extra={"decision": decision.action.value, "version": decision.version,
                                                "previous_champion": decision.previous_champion,
                                                "actor": decision.actor, "reasons": list(decision.reasons)})
        return decision

    def decisions(self) -> list[Decision]:
        """All decisions, oldest first."""
        out = []
        for key in self.bucket.list_keys(self.decisions_prefix):
            data = self.bucket.get_json(key) if key.endswith(".json") else None
            if data:
                out.append(Decision.from_json(data))
        return sorted(out, key=lambda d: d.at)

    def decision_for_version(self, version: str) -> Decision | None:
        """The latest gate (or hand) decision about a candidate version: promoted, rejected, forced or published."""
        found = [d for d in self.decisions() if d.version == version and d.action in VERSION_VERDICTS]
        return found[-1] if found else None

    def decision_for_job(self, job_name: str) -> Decision | None:
        found = [d for d in self.decisions() if d.job_name == job_name]
        return found[-1] if found else None

    def rejections_since_last_change(self, decisions: Sequence[Decision] | None = None) -> int:
        count = 0
        for decision in reversed(decisions if decisions is not None else self.decisions()):
            if decision.action in CHAMPION_CHANGES:
                break
            if decision.action is Action.REJECTED:
                count += 1
        return count

    def champion_history(self, decisions: Sequence[Decision] | None = None) -> list[str]:
        """The stack of champions, oldest first; a rollback pops the version it rolled back from."""
        stack: list[str] = []
        for decision in decisions if decisions is not None else self.decisions():
            if decision.action not in CHAMPION_CHANGES or not decision.version:
                continue
            if decision.action is Action.ROLLED_BACK:
                if stack and stack[-1] == decision.previous_champion:
                    stack.pop()
            elif not stack and decision.previous_champion:
                stack.append(decision.previous_champion)  # a champion published before the log started
            if not stack or stack[-1] != decision.version:
                stack.append(decision.version)
        return stack

    # ------------------------------------------------------------------ champion changes
    def promote(self, version: str, *, action: Action, actor: str, reasons: Sequence[str],
                **details: Any) -> Decision:
        """Point the champion at `version` and record why (promoted by the gate, forced, published)."""
        if action not in (Action.PROMOTED, Action.FORCED, Action.PUBLISHED):
            raise ValueError(f"{action} does not change the champion by promotion")
        previous = self.champion_version()
        self._point_champion_at(version)
        return self.record(Decision(action=action, version=version, previous_champion=previous, actor=actor,
                                    reasons=tuple(reasons), **details))

    def force_promote(self, version: str, *, actor: str, reason: str, **details: Any) -> Decision:
        if not reason.strip():
            raise RegistryError("a forced promotion needs a reason (--reason)")
        self.require(version)
        return self.promote(version, action=Action.FORCED, actor=actor,
                            reasons=(f"forced by {actor}: {reason.strip()}",), **details)

    def rollback(self, *, actor: str, reason: str = "", to: str | None = None) -> Decision:
        current = self.champion_version()
        if to is None:
            history = self.champion_history()
            if current and history and history[-1] != current:
                history.append(current)  # the pointer moved outside the log: roll back from what serves
            if len(history) < 2:
                raise RegistryError("nothing to roll back to: no earlier champion in the decision log")
            to = history[-2]
        if to == current:
            raise RegistryError(f"{to} is already the champion")
        self.require(to)
        self._point_champion_at(to)
        why = f"rolled back from {current} to {to} by {actor}" + (f": {reason.strip()}" if reason.strip() else "")
        return self.record(Decision(action=Action.ROLLED_BACK, version=to, previous_champion=current, actor=actor,
                                    reasons=(why,)))

    def publish(self, bundle_dir: Path, tarball: Path, *, actor: str, reason: str = "published",
                replace_champion: bool = False) -> Decision | None:
        """Register a local bundle; make it champion if there is none yet (or if asked to).

        For the first deployment and the local stack. Returns the decision, or None when nothing changed.
        """
        bundle = load_bundle(bundle_dir)
        self.register(tarball, bundle, source={"kind": Origin.PUBLISHED.value, "by": actor})
        current = self.champion_version()
        if current == bundle.version or (current and not replace_champion):
            return None
        return self.promote(bundle.version, action=Action.PUBLISHED, actor=actor, reasons=(reason,),
                            candidate_metrics=dict(bundle.metrics))


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
