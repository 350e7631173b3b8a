"""The local stack's background process: emulator, token endpoint, API, event pump, state snapshots.

Started by `categorizer up` (detached); stops cleanly on SIGTERM (`categorizer down`), saving its state.
With `--served DIR` (`make up`) it also owns the background build of the chosen recipe (served_build.py):
the quick model serves at once, the built one reaches the API through the gate.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from categorizer_cli.local.config import ACCOUNT, DEMO_PASSWORD, DEMO_USERNAME, REGION, STAGE, LocalConfig
from categorizer_cli.paths import DATA_DIR, DEFAULT_MODEL
from infra import config as infra


def log(message: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", flush=True)


def default_model_tarball() -> tuple[Path, Path]:
    bundle = DEFAULT_MODEL.resolve()
    tarball = bundle.with_name(f"{bundle.name}.tar.gz")
    if not (bundle / "manifest.json").is_file() or not tarball.is_file():
        raise SystemExit(f"no default model at {DEFAULT_MODEL}: run `make model` first")
    return bundle, tarball


def function_environment(config: LocalConfig, stage, names, identity) -> dict[str, str]:
    """The union of the functions' environments (one process runs them all; the names do not clash)."""
    inputs = infra.EnvironmentInputs(
        identity=infra.IdentityValues(user_pool_id=identity.user_pool_id,
                                      app_client_ids=(identity.machine_client_id, identity.user_client_id)),
        training=infra.TrainingValues(
            sagemaker_role_arn=f"arn:aws:iam::{ACCOUNT}:role/{names.sagemaker_role}",
            training_image_uri=infra.training_image_uri(repository=stage.training_image_repository,
                                                        tag=stage.training_image_tag, region=REGION,
                                                        registry_account=infra.dlc_account(REGION)),
            source_uri=f"s3://{names.model_bucket}/{infra.TRAINING_PREFIX}source/sourcedir.tar.gz"),
        batch_queue_url=f"{config.aws_endpoint}/{ACCOUNT}/{names.ingest_queue}",  # fan-out, as in AWS
    )
    env: dict[str, str] = {}
    for function in infra.FunctionName:
        env |= infra.function_environment(function, stage=stage, names=names, inputs=inputs)
    env |= {  # what the local stack changes for every function (one process runs them all)
        "AWS_ENDPOINT_URL": config.aws_endpoint,
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        # Tokens carry the real AWS issuer; the emulator serves the keys at its own address.
        "JWKS_URL": f"{config.aws_endpoint}/{identity.user_pool_id}/.well-known/jwks.json",
        "MODEL_CACHE_DIR": str(config.directory / "cache" / "models"),
        "ONNX_THREADS": "2",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "false",
    }
    return env


def outputs(config: LocalConfig, names, identity) -> dict:
    key = infra.OutputKey
    return {names.stack: {
        key.STAGE: STAGE, key.REGION: REGION, key.API_URL: config.api_url,
        key.USER_POOL_ID: identity.user_pool_id, key.MACHINE_CLIENT_ID: identity.machine_client_id,
        key.USER_CLIENT_ID: identity.user_client_id, key.TOKEN_URL: config.token_url,
        key.INGEST_BUCKET: names.ingest_bucket, key.RESULTS_BUCKET: names.results_bucket,
        key.MODEL_BUCKET: names.model_bucket, key.CHAMPION_PARAMETER: names.champion_parameter,
        key.FEEDBACK_TABLE: names.feedback_table,
        key.INGEST_QUEUE_URL: f"{config.aws_endpoint}/{ACCOUNT}/{names.ingest_queue}",
        key.INGEST_DLQ_URL: f"{config.aws_endpoint}/{ACCOUNT}/{names.ingest_dlq}",
        key.START_TRAINING_FUNCTION: names.function(infra.FunctionName.START_TRAINING),
        # Local only: where the emulator listens, and the demo identities (nothing here guards real data).
        "AwsEndpointUrl": config.aws_endpoint,
        "DemoUsername": DEMO_USERNAME, "DemoPassword": DEMO_PASSWORD,
        "MachineClientSecret": identity.machine_client_secret,
    }}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="categorizer_cli.local.supervisor")
    parser.add_argument("--served", type=Path, help="the served model's artifacts folder: its model serves if it "
                        "exists (published, or judged by the gate); else it is built in the background")
    parser.add_argument("--served-recipe", default="auto", help="recipe of the background build")
    return parser.parse_args(argv)


def first_model(served: Path | None, champion: str | None) -> tuple[Path, Path, str]:
    """What to publish (it becomes champion only on an empty registry): a served bundle built earlier, else
    the quick model (`artifacts/model`), which serves while the served one builds."""
    from categorizer_cli.local.served_build import served_bundle

    existing = served_bundle(served) if served else None
    if existing is not None and champion is None:
        return *existing, "the served model (built earlier), published by `make up`"
    bundle, tarball = default_model_tarball()
    reason = "the default model, published by `make up`" if served is None else \
        "the quick model, published by `make up` to serve while the chosen recipe builds"
    return bundle, tarball, reason


def main(argv: list[str] | None = None) -> int:
    from moto.server import ThreadedMotoServer

    args = parse_args(argv)
    config = LocalConfig.from_env()
    config.directory.mkdir(parents=True, exist_ok=True)
    config.ready_file.unlink(missing_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the emulator's per-request lines drown ours
    moto = ThreadedMotoServer(ip_address=config.host, port=config.moto_port, verbose=False)
    moto.start()
    log(f"emulator on {config.aws_endpoint}")
    os.environ.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": REGION,
                       "AWS_DEFAULT_REGION": REGION})

    from categorizer_cli.local.provision import local_registry, provision, publish_default_model
    from categorizer_cli.local.state import StateStore

    stage = infra.load_stage(STAGE)
    names = infra.resource_names(STAGE, account=ACCOUNT, region=REGION)
    state = StateStore(config.state_dir, config.aws_endpoint, names)
    restored = state.restore()
    log(f"restored {restored} object(s) from {config.state_dir}" if restored else "fresh state")
    identity = provision(config.aws_endpoint, stage, names)
    bundle, tarball, reason = first_model(args.served, local_registry(config.aws_endpoint, names).champion_version())
    champion = publish_default_model(config.aws_endpoint, names, bundle, tarball=tarball, data_dir=DATA_DIR,
                                     reason=reason)
    log(f"provisioned {names.stack}; champion {champion}")

    # Settings are read once per process, at import: the environment must be complete before any function code runs.
    os.environ.update(function_environment(config, stage, names, identity))

    import uvicorn

    from categorizer.api.app import create_app
    from categorizer.contract import ApiSettings
    from categorizer_cli.local.pump import EventPump
    from categorizer_cli.local.token_endpoint import TokenIssuer, serve_tokens

    token_server = serve_tokens(TokenIssuer(endpoint=config.aws_endpoint, region=REGION,
                                            user_pool_id=identity.user_pool_id), config.host, config.token_port)
    app = create_app(ApiSettings.from_env())
    api = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.api_port, log_level="warning",
                                        access_log=False))
    api_thread = threading.Thread(target=api.run, name="api", daemon=True)
    api_thread.start()
    pump = EventPump(endpoint=config.aws_endpoint, stage=stage, names=names, log=log,
                     state_file=config.directory / "pump.json", snapshot=state.snapshot)
    pump.start()
    _serve_control(config, pump, log)
    background = _start_served_build(args, config, pump, champion, local_registry(config.aws_endpoint, names))
    while not api.started:
        time.sleep(0.05)
    config.outputs_file.write_text(json.dumps(outputs(config, names, identity), indent=1))
    config.ready_file.write_text(str(os.getpid()))
    log(f"ready: API {config.api_url}")

    stop.wait()
    log("stopping")
    config.ready_file.unlink(missing_ok=True)
    if background is not None:
        background.stop()
    pump.stop()
    pump.join(timeout=60)
    state.snapshot()
    api.should_exit = True
    api_thread.join(timeout=10)
    token_server.shutdown()
    moto.stop()
    config.pid_file.unlink(missing_ok=True)
    log("stopped; state saved")
    return 0


def _start_served_build(args: argparse.Namespace, config: LocalConfig, pump, champion: str | None, registry):
    """The served folder: built in the background and submitted to the gate (or submitted, or left alone).

    Whatever goes wrong here is a status line; the stack serves the champion it has either way."""
    from categorizer_cli.local.served_build import STATUS_FILE, BuildState, BuildStatus, ServedBuild

    status_file = config.directory / STATUS_FILE
    if args.served is None:
        status_file.unlink(missing_ok=True)  # no background build in this run: no stale line in `status`
        return None
    try:
        from categorizer.contract import PromoteSettings
        from categorizer.handlers.promote import build_dependencies
        from categorizer.registry.promotion import submit_bundle

        deps = build_dependencies(PromoteSettings.from_env())  # the promote function's settings for this stage
        deps.actor = "local:make up (background build)"

        def submit(bundle: Path, tarball: Path, source: dict):
            return submit_bundle(bundle, tarball, deps, source=source)

        background = ServedBuild(served_dir=args.served, recipe=args.served_recipe, directory=config.directory,
                                 submit=submit, lock=pump.busy, log=log)
        status = background.start(champion=champion, earlier_decision=registry.decision_for_version)
    except Exception as exc:  # the stack still serves its champion; `categorizer status` says why nothing builds
        log(f"served model ({args.served}): the background build could not start:\n{traceback.format_exc()}")
        BuildStatus(state=BuildState.FAILED, recipe=args.served_recipe, served_dir=str(args.served),
                    log=str(config.log_file), started_at=time.time(), ended_at=time.time(),
                    reasons=(f"the background build could not start: {type(exc).__name__}: {exc}",)).write(status_file)
        return None
    log(f"served model ({args.served}): {status.describe()}")
    return background


def _serve_control(config: LocalConfig, pump, log) -> None:
    """A control file the CLI drops to ask for a retrain now (`categorizer retrain` on the local stack)."""
    request_file = config.directory / "retrain.request"
    result_file = config.directory / "retrain.result.json"

    def watch() -> None:
        while not pump.stopping.is_set():
            if request_file.exists():
                request_file.unlink(missing_ok=True)
                try:
                    with pump.busy:
                        started = pump.fire_schedule_if_due(force=True)
                        outcomes = pump.run_new_training_jobs()
                    result = {"ok": True, "start_training": started, "jobs": outcomes}
                except Exception as exc:  # report to the waiting CLI instead of dying
                    result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                    log(f"retrain failed: {result['error']}")
                tmp = result_file.with_suffix(".tmp")
                tmp.write_text(json.dumps(result, default=str))
                tmp.replace(result_file)
            time.sleep(0.5)

    threading.Thread(target=watch, name="control", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
