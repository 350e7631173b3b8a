"""`categorizer retrain` and `categorizer model list|promote|rollback`: the learning loop from the command line.

They work on any stage through its outputs file (`cdk deploy --outputs-file` shape; the local stack writes
.local/outputs.json): the model bucket, the champion parameter, the feedback table and the start-training
function are read from it. boto3 talks to the local emulator when the outputs name one (AwsEndpointUrl).
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from categorizer_cli.catalogue_view import catalogue_view, print_catalogue
from categorizer_cli.stack_client import Stack, StackError

MAX_REASONS_SHOWN = 2


def _with_outputs(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--outputs", type=Path, help="stack outputs file (default: .local/outputs.json)")
    return parser


def add_retrain_parser(sub: argparse._SubParsersAction) -> None:
    p = _with_outputs(sub.add_parser("retrain", help="run the scheduled retraining now: export feedback, train, "
                                                     "then promote or reject"))
    p.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the local training run")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(func=run_retrain)


def add_model_parsers(model: argparse._SubParsersAction) -> None:
    p = _with_outputs(model.add_parser("list", help="registered versions, their metrics, the champion, decisions"))
    p.add_argument("--decisions", type=int, default=15, help="how many recent decisions to show")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_list)

    p = _with_outputs(model.add_parser("promote", help="make VERSION the champion if it passes the gate"))
    p.add_argument("version")
    p.add_argument("--force", action="store_true", help="skip the gate (recorded with who and why)")
    p.add_argument("--reason", default="", help="why (required with --force)")
    p.add_argument("--by", help="who (default: your AWS identity, or local:<user> on the local stack)")
    p.set_defaults(func=run_promote)

    p = _with_outputs(model.add_parser("rollback", help="put the previous champion back"))
    p.add_argument("--to", help="a registered version (default: the champion before the current one)")
    p.add_argument("--reason", default="")
    p.add_argument("--by", help="who (default: your AWS identity, or local:<user> on the local stack)")
    p.set_defaults(func=run_rollback)


# ---------------------------------------------------------------------- wiring

def registry_for(stack: Stack):
    from categorizer.adapters.champion_parameter import ChampionParameter
    from categorizer.adapters.model_registry_bucket import ModelBucket
    from categorizer.registry.store import ModelRegistry
    from infra import config as infra

    return ModelRegistry(ModelBucket(stack.get("ModelBucket"), stack.aws("s3")),
                         ChampionParameter(stack.get("ChampionParameter"), stack.aws("ssm")),
                         models_prefix=infra.MODELS_PREFIX, decisions_prefix=infra.DECISIONS_PREFIX)


def actor_for(stack: Stack, by: str | None) -> str:
    if by:
        return by
    if stack.outputs.get("AwsEndpointUrl"):
        return f"local:{getpass.getuser()}"
    return stack.aws("sts").get_caller_identity()["Arn"]


def promote_settings(stack: Stack):
    """The promote function's settings for this stack's stage, built exactly as infra builds its environment:
    the CLI's gate and the deployed gate apply the same stage values to the same candidate."""
    from infra import config as infra

    stage = infra.load_stage(stack.get("Stage"))
    names = infra.resource_names(stage.name, account="deployed", region=stack.get("Region"))
    settings = infra.function_settings(infra.FunctionName.PROMOTE, stage=stage, names=names)
    # The resources are the deployed stack's (its outputs); the bundles it compares go to this machine's temp.
    return dataclasses.replace(
        settings, model_bucket=stack.get("ModelBucket"), champion_parameter=stack.get("ChampionParameter"),
        feedback_table=stack.get("FeedbackTable"),
        model_cache_dir=str(Path(tempfile.gettempdir()) / "categorizer-cli-models"))


def promotion_dependencies(stack: Stack, registry):
    """The promote function's dependencies and settings, for this stage, run from the CLI."""
    from categorizer.adapters.feedback_scan import FeedbackScan
    from categorizer.registry.promotion import PromotionDependencies
    from categorizer.registry.store import registry_cache_dir

    settings = promote_settings(stack)
    scan = FeedbackScan(stack.get("FeedbackTable"), stack.aws("dynamodb"))
    return PromotionDependencies(settings=settings, registry=registry, read_feedback=scan.all_records,
                                 cache_dir=registry_cache_dir(settings.model_cache_dir))


# ---------------------------------------------------------------------- commands

def run_retrain(args: argparse.Namespace) -> int:
    stack = Stack.load(args.outputs)
    if stack.outputs.get("AwsEndpointUrl"):
        from categorizer_cli.stack_commands import run_retrain_local

        result = run_retrain_local(timeout=args.timeout)
    else:
        result = _invoke_start_training(stack)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        _print_retrain(result, local=bool(stack.outputs.get("AwsEndpointUrl")))
    return 0 if result.get("ok", True) else 1


def _invoke_start_training(stack: Stack) -> dict[str, Any]:
    """Deployed stage: the start-training function with the event its schedule sends (time = now)."""
    event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "", "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": stack.get("Region"),
             "resources": [], "detail": {}}
    answer = stack.aws("lambda").invoke(FunctionName=stack.get("StartTrainingFunction"),
                                        InvocationType="RequestResponse", Payload=json.dumps(event).encode())
    payload = json.loads(answer["Payload"].read() or b"{}")
    if answer.get("FunctionError"):
        return {"ok": False, "error": payload}
    return {"ok": True, "start_training": payload, "jobs": []}


def _print_retrain(result: dict[str, Any], *, local: bool) -> None:
    if not result.get("ok", True):
        print(f"retrain failed: {result.get('error')}")
        return
    start = result.get("start_training") or {}
    status = start.get("status", "?")
    print(f"start-training: {status} {start.get('job_name', '')}".rstrip())
    if status == "skipped":
        print(f"  why: {start.get('reason')}")
    export = start.get("export") or {}
    if export:
        print(f"  feedback: {export.get('usable')} usable ({export.get('train_items')} to train, "
              f"{export.get('evaluation_items')} held out), {export.get('new_items')} new; refused labels: "
              f"{export.get('refused_unknown_label') or 'none'}")
    for job in result.get("jobs", []):
        print(f"training job {job.get('job_name')}: {job.get('status')} in {job.get('training_seconds')}s")
        if job.get("failure_reason"):
            print(f"  {job['failure_reason'][:300]}")
        decision = (job.get("promotion") or {}).get("decision") or {}
        if decision:
            print(f"  decision: {decision.get('action')} {decision.get('version') or ''}".rstrip())
            for reason in decision.get("reasons", []):
                print(f"    - {reason}")
    if status == "started" and not local:
        print("SageMaker trains it now; the promote function decides when it ends. "
              "Follow with `categorizer model list`.")


def run_list(args: argparse.Namespace) -> int:
    stack = Stack.load(args.outputs)
    registry = registry_for(stack)
    champion = registry.champion_version()
    models, decisions = registry.list_models(), registry.decisions()
    outcome = {d.version: d.action.value for d in decisions if d.version}
    if args.json:
        print(json.dumps({"champion": champion, "models": [m.to_json() | {"status": _status(m.version, champion,
                                                                                              outcome)}
                                                              for m in models],
                          "decisions": [d.to_json() for d in decisions],
                          "labels": _catalogue_view(registry)}, indent=1, default=str))
        return 0
    print(f"champion: {champion or 'none'}")
    print(f"{'version':<28} {'registered':<21} {'source':<34} {'accuracy':>8} {'macro-F1':>8}  status")
    for m in models:
        metrics = m.metrics
        source = m.source.get("job_name") or m.source.get("kind", "")
        print(f"{m.version:<28} {m.registered_at[:19]:<21} {source[:34]:<34} "
              f"{_num(metrics.get('accuracy')):>8} {_num(metrics.get('macro_f1')):>8}  "
              f"{_status(m.version, champion, outcome)}")
    print(f"\nlast {min(args.decisions, len(decisions))} of {len(decisions)} decision(s):")
    for d in decisions[-args.decisions:]:
        print(f"{d.at[:19]}  {d.action.value:<15} {d.version or '-':<28} by {d.actor}")
        for reason in d.reasons[:MAX_REASONS_SHOWN]:
            print(f"    - {reason}")
        for change in d.label_changes:
            print(f"    + label change made live: {change}")
    view = _catalogue_view(registry)
    if view is not None:
        print()
        print_catalogue(view, history=5)
    return 0


def _catalogue_view(registry) -> dict | None:
    try:
        return catalogue_view(registry)
    except Exception as exc:  # the model list must not fail on the catalogue; it says why instead
        print(f"(label catalogue unavailable: {exc})")
        return None


def _status(version: str, champion: str | None, outcome: dict[str, str]) -> str:
    return "CHAMPION" if version == champion else outcome.get(version, "registered")


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def run_promote(args: argparse.Namespace) -> int:
    from categorizer.engine import BundleError
    from categorizer.registry.evaluation import EvaluationDataError
    from categorizer.registry.feedback_export import ExportLocation, read_snapshot
    from categorizer.registry.promotion import make_labels_live, review_registered
    from categorizer.registry.records import Action
    from categorizer.registry.store import RegistryError

    stack = Stack.load(args.outputs)
    registry = registry_for(stack)
    actor = actor_for(stack, args.by)
    try:
        record = registry.require(args.version)
        if args.force:
            decision = registry.force_promote(record.version, actor=actor, reason=args.reason,
                                              candidate_metrics={"bundle": record.metrics})
        else:
            deps = promotion_dependencies(stack, registry)
            job = record.source.get("job_name")
            snapshot = read_snapshot(registry.bucket, ExportLocation.for_job(deps.settings.training_prefix, job)) \
                if job else None  # the catalogue the job was trained for; else the stored one
            review = review_registered(record.version, deps, catalogue=snapshot)
            details = {"candidate_metrics": review.candidate.summary(),
                       "champion_metrics": review.champion.summary(),
                       "checks": tuple(c.to_json() for c in review.gate.checks)}
            if not review.gate.accepted:
                print(f"{record.version} does not pass the gate:")
                for reason in review.gate.reasons:
                    print(f"  - {reason}")
                print("Use --force --reason '...' to promote it anyway (recorded with your name).")
                return 1
            reasons = (*review.gate.reasons, f"promoted by {actor}" + (f": {args.reason}" if args.reason else ""))
            made_live = make_labels_live(registry, snapshot, deps.registry.fetch_bundle(record.version,
                                                                                        deps.bundles_dir),
                                         actor=actor) if snapshot else ()
            decision = registry.promote(record.version, action=Action.PROMOTED, actor=actor, reasons=reasons,
                                        label_changes=made_live, **details)
    except (RegistryError, StackError, BundleError, EvaluationDataError) as exc:
        print(f"error: {exc}")
        return 1
    print(f"{decision.action.value}: {decision.version} is the champion (was {decision.previous_champion}), "
          f"by {decision.actor}")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from categorizer.registry.store import RegistryError

    stack = Stack.load(args.outputs)
    registry = registry_for(stack)
    try:
        decision = registry.rollback(actor=actor_for(stack, args.by), reason=args.reason, to=args.to)
    except RegistryError as exc:
        print(f"error: {exc}")
        return 1
    print(f"rolled back: {decision.version} is the champion again (was {decision.previous_champion}), "
          f"by {decision.actor}")
    return 0
