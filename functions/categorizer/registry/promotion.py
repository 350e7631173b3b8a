"""Promote or reject a finished training job's model ("SageMaker Training Job State Change" events).

Completed: fetch the job's model.tar.gz, verify it (hashes, labels), register it under models/<version>/,
score candidate and champion on the same fixed hold-out and the same held-out feedback items, apply the
gate, move the champion pointer only if it passes, and record the decision either way. The comparison goes
through the label catalogue the job was exported with (its snapshot); a promotion makes that snapshot's
label changes live in the catalogue (changes recorded while the job ran wait for the next job).
Failed / Stopped: record it; the champion stays. A redelivered event finds its decision and changes nothing.

`submit_bundle` sends a bundle built elsewhere (`make up`'s background build of the chosen recipe) down the
same path: verified, registered, scored against the champion by the same gate (its rebuild rule: the record's
origin says so), promoted or rejected, and the decision recorded.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from categorizer.adapters.feedback_table import FeedbackRecord
from categorizer.adapters.model_registry_bucket import split_s3_uri
from categorizer.contract import LearningLoop, PromoteSettings
from categorizer.engine import Bundle, BundleError, Classifier, load_bundle
from categorizer.engine.bundle import extract_bundle
from categorizer.observability import logger
from categorizer.registry.catalogue import Catalogue, CatalogueStore, LabelStatus, make_live, mismatch_notes
from categorizer.registry.evaluation import LabelledTexts, evaluate, map_labels, read_labelled_files
from categorizer.registry.feedback_export import ExportLocation, catalogue_for, evaluation_set, read_snapshot
from categorizer.registry.gate import GatePolicy, GateResult, LabelChanges, ModelScores, decide
from categorizer.registry.records import Action, Decision, Origin
from categorizer.registry.store import ModelRegistry
from categorizer.registry.training_job import holdout_prefix, job_output_key

DETAIL_TYPE = "SageMaker Training Job State Change"
TERMINAL_STATES = ("Completed", "Failed", "Stopped")
PROMOTE_ACTOR = "promote-function"


class PromotionStatus(StrEnum):
    PROMOTED = "promoted"
    REJECTED = "rejected"
    TRAINING_FAILED = "training_failed"  # the job failed or was stopped: recorded, the champion stays
    ALREADY_DECIDED = "already_decided"  # a redelivered event
    IGNORED = "ignored"  # another stage's job, or a status that is not final


class EventShapeError(ValueError):
    """The event is not a SageMaker training job state change."""


@dataclass(frozen=True)
class TrainingJobState:
    job_name: str
    status: str
    secondary_status: str | None
    failure_reason: str | None
    model_artifacts: str | None  # s3://... of model.tar.gz (present when Completed)

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> TrainingJobState:
        if event.get("detail-type") != DETAIL_TYPE or event.get("source") != "aws.sagemaker":
            raise EventShapeError(f"not a {DETAIL_TYPE!r} event: {event.get('detail-type')!r}")
        detail = event.get("detail") or {}
        try:
            name, status = str(detail["TrainingJobName"]), str(detail["TrainingJobStatus"])
        except KeyError as exc:
            raise EventShapeError(f"the event's detail has no {exc.args[0]}") from exc
        return cls(job_name=name, status=status, secondary_status=detail.get("SecondaryStatus"),
                   failure_reason=detail.get("FailureReason"),
                   model_artifacts=(detail.get("ModelArtifacts") or {}).get("S3ModelArtifacts"))


@dataclass
class PromotionDependencies:
    settings: PromoteSettings
    registry: ModelRegistry
    read_feedback: Callable[[], Sequence[FeedbackRecord]]
    cache_dir: Path  # bundles/, holdout/ and incoming candidates; never the serving model store's directory
    actor: str = PROMOTE_ACTOR

    @property
    def bundles_dir(self) -> Path:
        return self.cache_dir / "bundles"


@dataclass(frozen=True)
class Review:
    candidate: ModelScores
    champion: ModelScores
    gate: GateResult


def policy_from(learning: LearningLoop) -> GatePolicy:
    return GatePolicy(max_class_f1_drop=learning.promotion_max_class_f1_drop,
                      macro_f1_tolerance=learning.promotion_macro_f1_tolerance,
                      new_label_min_precision=learning.new_label_min_precision,
                      new_label_min_recall=learning.new_label_min_recall,
                      new_label_min_held_out=learning.new_label_min_held_out)


def label_changes_of(catalogue: Catalogue, champion_labels: Sequence[str]) -> LabelChanges:
    label_map = catalogue.label_map()
    gone = frozenset(name for name, target in label_map.mapping.items() if target != name)
    serving = set(champion_labels)
    changes = tuple(p.describe(n) for n, p in catalogue.pending_changes()) + tuple(
        f"add {e.name!r}" for e in catalogue.labels
        if e.pending is None and e.status in (LabelStatus.PROPOSED, LabelStatus.ACTIVE) and e.name not in serving)
    return LabelChanges(retired=gone, changes=changes)


def load_holdout(registry: ModelRegistry, training_prefix: str, bundle: Bundle, cache_dir: Path) -> LabelledTexts:
    """The fixed hold-out channel, read with the columns the model was trained with."""
    prefix = holdout_prefix(training_prefix)
    keys = [k for k in registry.bucket.list_keys(prefix) if not k.endswith("/")]
    target = cache_dir / "holdout"
    shutil.rmtree(target, ignore_errors=True)
    paths = [registry.bucket.download_file(key, target / key[len(prefix):]) for key in keys]
    return read_labelled_files(paths, text_columns=tuple(bundle.manifest.get("text_columns") or ("text",)),
                               label_column=str(bundle.manifest.get("label_column") or "category"))


def review_candidate(candidate: Bundle, champion: Bundle, *, holdout: LabelledTexts, feedback: LabelledTexts,
                     policy: GatePolicy, threads: int | None = None, catalogue: Catalogue | None = None,
                     rebuild: bool = False) -> Review:
    """Both models scored on the same items. With a catalogue, the items' labels and both models' outputs are
    named through its map (a champion's renamed label counts under its new name), and the candidate's labels
    the champion lacks are checked as new labels."""
    label_map = catalogue.label_map() if catalogue else None
    if label_map is not None:
        holdout = map_labels(holdout, label_map)
    scores = {}
    for role, bundle in (("candidate", candidate), ("champion", champion)):
        classifier = Classifier(bundle, threads=threads)
        # The candidate is judged by its own labels (one it still holds under a retired name must show);
        # the champion's are named as the catalogue names them now.
        outputs = label_map if role == "champion" else None
        names = tuple(sorted({label_map(label) or label for label in bundle.labels})) if outputs and label_map \
            else bundle.labels
        scores[role] = ModelScores(labels=names, holdout=evaluate(classifier, holdout, outputs),
                                   feedback=evaluate(classifier, feedback, outputs),
                                   combined=evaluate(classifier, holdout + feedback, outputs)
                                   if label_map and role == "candidate" else None)
    if catalogue is not None:  # a label the map drops is not "shared": the candidate must not hold it
        scores["champion"] = ModelScores(
            labels=tuple(n for n in scores["champion"].labels if label_map and label_map(n) is not None),
            holdout=scores["champion"].holdout, feedback=scores["champion"].feedback)
    changes = label_changes_of(catalogue, champion.labels) if catalogue else None
    return Review(candidate=scores["candidate"], champion=scores["champion"],
                  gate=decide(scores["candidate"], scores["champion"], policy, changes, rebuild=rebuild))


def review_registered(version: str, deps: PromotionDependencies, *, candidate: Bundle | None = None,
                      catalogue: Catalogue | None = None) -> Review:
    """Score a registered version against the current champion (the promote function and the CLI use this).

    `catalogue`: the job's snapshot; else the stored catalogue (else the champion's labels, as before).
    A version registered as a rebuild (Origin.REBUILD) is judged by the gate's rebuild rule."""
    registry, settings = deps.registry, deps.settings
    rebuild = registry.require(version).origin is Origin.REBUILD
    champion_version = registry.champion_version()
    if champion_version is None:
        raise BundleError("there is no champion to compare with")
    candidate = candidate or registry.fetch_bundle(version, deps.bundles_dir)
    champion = registry.fetch_bundle(champion_version, deps.bundles_dir)
    registry.prune_cache(deps.bundles_dir, keep={version, champion_version})
    holdout = load_holdout(registry, settings.training_prefix, candidate, deps.cache_dir)
    stored = catalogue if catalogue is not None else CatalogueStore(registry.bucket).read()
    if stored is not None:
        for note in mismatch_notes(stored, champion=champion_version, champion_labels=champion.labels):
            logger.warning("label catalogue and champion differ", extra={"note": note})
    feedback = evaluation_set(deps.read_feedback(), labels=champion.labels,
                              holdout_percent=settings.learning.feedback_holdout_percent, catalogue=stored)
    return review_candidate(candidate, champion, holdout=holdout, feedback=feedback,
                            policy=policy_from(settings.learning), threads=settings.onnx_threads,
                            catalogue=catalogue_for(champion.labels, stored) if stored is not None else None,
                            rebuild=rebuild)


def handle_training_state_change(event: dict[str, Any], deps: PromotionDependencies) -> dict[str, Any]:
    state = TrainingJobState.from_event(event)
    registry, settings = deps.registry, deps.settings
    if not state.job_name.startswith(f"{settings.training_job_prefix}-"):
        return _outcome(PromotionStatus.IGNORED, state,
                        reason=f"not a job of this stage ({settings.training_job_prefix}-*)")
    if state.status not in TERMINAL_STATES:
        return _outcome(PromotionStatus.IGNORED, state, reason=f"status {state.status} is not final")
    earlier = registry.decision_for_job(state.job_name)
    if earlier is not None:
        return _outcome(PromotionStatus.ALREADY_DECIDED, state, earlier)
    champion = registry.champion_version()
    if state.status != "Completed":
        reason = f"training job {state.status.lower()}"
        reason += f" ({state.secondary_status})" if state.secondary_status else ""
        reason += f": {state.failure_reason}" if state.failure_reason else ""
        return _outcome(PromotionStatus.TRAINING_FAILED, state, registry.record(Decision(
            action=Action.TRAINING_FAILED, version=None, previous_champion=champion, actor=deps.actor,
            reasons=(reason, "the champion keeps serving"), job_name=state.job_name)))

    try:
        candidate, tarball = _fetch_candidate(state, deps)
    except (BundleError, ClientError, ValueError) as exc:
        logger.error("candidate model refused", extra={"job_name": state.job_name, "error": str(exc)})
        return _outcome(PromotionStatus.REJECTED, state, registry.record(Decision(
            action=Action.REJECTED, version=None, previous_champion=champion, actor=deps.actor,
            reasons=(f"the candidate bundle cannot be used: {exc}",), job_name=state.job_name)),
            consecutive_rejections=registry.rejections_since_last_change())
    try:
        return _decide(state, candidate, tarball, champion, deps)
    finally:
        shutil.rmtree(tarball.parent, ignore_errors=True)


def _decide(state: TrainingJobState, candidate: Bundle, tarball: Path, champion: str | None,
            deps: PromotionDependencies) -> dict[str, Any]:
    registry, settings = deps.registry, deps.settings
    location = ExportLocation.for_job(settings.training_prefix, state.job_name)
    export = registry.bucket.get_json(location.summary_key)
    registry.register(tarball, candidate, source={
        "kind": Origin.TRAINING_JOB.value, "job_name": state.job_name,
        "feedback_until": (export or {}).get("feedback_until"), "export": export})
    status, decision = judge(candidate, champion, deps, snapshot_location=location, job_name=state.job_name)
    extra = {"consecutive_rejections": registry.rejections_since_last_change()} \
        if status is PromotionStatus.REJECTED else {}
    return _outcome(status, state, decision, **extra)


def judge(candidate: Bundle, champion: str | None, deps: PromotionDependencies, *,
          snapshot_location: ExportLocation | None, job_name: str | None) -> tuple[PromotionStatus, Decision]:
    """A registered candidate against the champion: the gate, then the champion pointer and the decision record.

    `snapshot_location`: the job's export (its catalogue snapshot); None for a bundle built outside a job."""
    registry = deps.registry
    details: dict[str, Any] = {"job_name": job_name, "candidate_metrics": {"bundle": candidate.metrics}}
    if champion == candidate.version:  # a redelivery after the pointer moved but before the decision was saved
        return PromotionStatus.PROMOTED, registry.promote(
            candidate.version, action=Action.PROMOTED, actor=deps.actor,
            reasons=("the candidate is already the champion",), **details)
    if champion is None:
        earlier = [d for d in registry.decisions() if not job_name or d.job_name != job_name]
        if earlier:
            # A stage with a history has a champion: a missing or unreadable pointer is an outage to repair,
            # never a reason to promote without the gate.
            return PromotionStatus.REJECTED, registry.record(Decision(
                action=Action.REJECTED, version=candidate.version, previous_champion=None, actor=deps.actor,
                reasons=(f"the champion pointer is missing or unreadable although {len(earlier)} decision(s) exist; "
                         "restore it (`categorizer model rollback --to VERSION`) and retrain; a candidate is never "
                         "promoted without the gate",), **details))
        return PromotionStatus.PROMOTED, registry.promote(
            candidate.version, action=Action.PROMOTED, actor=deps.actor,
            reasons=("no champion to compare with and no decision yet: the first model serves",), **details)

    snapshot = read_snapshot(registry.bucket, snapshot_location) if snapshot_location else None
    review = review_registered(candidate.version, deps, candidate=candidate, catalogue=snapshot)
    details = {"job_name": job_name, "candidate_metrics": review.candidate.summary(),
               "champion_metrics": review.champion.summary(),
               "checks": tuple(check.to_json() for check in review.gate.checks)}
    if review.gate.accepted:
        made_live = make_labels_live(registry, snapshot, candidate, actor=deps.actor)
        return PromotionStatus.PROMOTED, registry.promote(
            candidate.version, action=Action.PROMOTED, actor=deps.actor, reasons=review.gate.reasons,
            label_changes=made_live, **details)
    return PromotionStatus.REJECTED, registry.record(Decision(
        action=Action.REJECTED, version=candidate.version, previous_champion=champion, actor=deps.actor,
        reasons=review.gate.reasons, **details))


@dataclass(frozen=True)
class Submission:
    """What became of a bundle submitted with `submit_bundle`."""

    status: PromotionStatus  # PROMOTED, REJECTED, or ALREADY_DECIDED (an earlier decision, not judged again)
    version: str
    decision: Decision

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "version": self.version, "decision": self.decision.to_json()}


def submit_bundle(bundle_dir: Path, tarball: Path, deps: PromotionDependencies, *,
                  source: dict[str, Any]) -> Submission:
    """A bundle built outside a training job, as a candidate: verified (every file's sha256), registered with
    `source` (its `kind` an Origin: REBUILD for a recipe rebuild of the base data), then judged like a job's
    model. A version already promoted, rejected, forced or published is not judged again (its decision is
    returned). Raises BundleError for a bundle that does not verify: nothing is registered."""
    registry = deps.registry
    candidate = load_bundle(bundle_dir)
    earlier = registry.decision_for_version(candidate.version)
    if earlier is not None:
        return Submission(PromotionStatus.ALREADY_DECIDED, candidate.version, earlier)
    registry.register(tarball, candidate, source=source)
    status, decision = judge(candidate, registry.champion_version(), deps, snapshot_location=None, job_name=None)
    return Submission(status, candidate.version, decision)


def make_labels_live(registry: ModelRegistry, snapshot: Catalogue | None, candidate: Bundle, *,
                     actor: str) -> tuple[str, ...]:
    """The snapshot's changes become live in the stored catalogue (a conditional write; later changes stay
    pending). Without a stored catalogue there is nothing to change."""
    store = CatalogueStore(registry.bucket)
    if store.read() is None:
        return ()
    made: list[tuple[str, ...]] = []

    def apply(current: Catalogue | None) -> Catalogue:
        updated, changes = make_live(current or catalogue_for(candidate.labels, None), snapshot,
                                     version=candidate.version, model_labels=candidate.labels, actor=actor)
        made[:] = [changes]
        return updated

    store.update(apply)
    return made[0] if made else ()


def _fetch_candidate(state: TrainingJobState, deps: PromotionDependencies) -> tuple[Bundle, Path]:
    settings, bucket = deps.settings, deps.registry.bucket
    uri = state.model_artifacts or bucket.uri(job_output_key(settings.training_output_prefix, state.job_name))
    artifact_bucket, key = split_s3_uri(uri)
    if artifact_bucket != bucket.bucket:
        raise ValueError(f"the job's model is outside the model bucket: {uri}")
    workdir = Path(tempfile.mkdtemp(prefix="candidate-", dir=_ensure(deps.cache_dir / "incoming")))
    try:
        tarball = bucket.download_file(key, workdir / "model.tar.gz")
        bundle = load_bundle(extract_bundle(tarball, workdir / "bundle"))  # verifies every file's sha256
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return bundle, tarball


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _outcome(status: PromotionStatus, state: TrainingJobState, decision: Decision | None = None,
             **extra: Any) -> dict[str, Any]:
    outcome: dict[str, Any] = {"status": status, "job_name": state.job_name, "job_status": state.status, **extra}
    if decision is not None:
        outcome["decision"] = decision.to_json()
    if status is PromotionStatus.PROMOTED and decision is not None:
        outcome["consecutive_rejections"] = 0
    logger.info("training job state handled", extra={k: v for k, v in outcome.items() if k != "decision"})
    return outcome
