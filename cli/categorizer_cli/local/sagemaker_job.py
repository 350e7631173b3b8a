"""Run a SageMaker training job on this machine, the way SageMaker would, then hand its end to promotion.

The emulator accepts CreateTrainingJob and marks the job Completed at once without running anything. This
runner does the work in between, with SageMaker's directory contract:

    <root>/input/config/{hyperparameters,inputdataconfig,resourceconfig}.json
    <root>/input/data/<channel>/...     every object under the channel's S3 prefix
    <root>/code/                         sagemaker_submit_directory unpacked (or this checkout, if absent)
    <root>/model/                        SM_MODEL_DIR: packed into <S3OutputPath>/<job>/output/model.tar.gz
    <root>/output/failure                what the algorithm reports when it fails

It runs `python <sagemaker_program> --name value ...` (the hyperparameters without `sagemaker_` ones) with the
SM_* environment, within MaxRuntimeInSeconds, then builds the "SageMaker Training Job State Change" event
AWS would send and gives it to the promote handler. Not used in AWS; torch is only in the subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from categorizer.adapters.model_registry_bucket import split_s3_uri
from categorizer.observability import logger
from categorizer_cli.local.lambda_context import LocalLambdaContext

CHECKOUT = Path(__file__).resolve().parents[3]  # the repository: model_build/ lives here
HOST = "algo-1"
SDK_PREFIX = "sagemaker_"
LOG_TAIL_CHARS = 2000


@dataclass
class LocalRun:
    status: str  # Completed | Failed | Stopped
    secondary_status: str
    started: datetime
    ended: datetime
    failure_reason: str | None = None
    model_artifacts: str | None = None
    log_file: Path | None = None


def decode_hyperparameters(raw: dict[str, str]) -> dict[str, Any]:
    """What the SageMaker training toolkit does: JSON-decode every value, or keep them all as given."""
    try:
        return {name: json.loads(value) for name, value in raw.items()}
    except (json.JSONDecodeError, TypeError):
        return dict(raw)


def user_arguments(hyperparameters: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for name, value in hyperparameters.items():
        if not name.startswith(SDK_PREFIX):
            args += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
    return args


def _download_prefix(s3: Any, uri: str, destination: Path) -> int:
    bucket, prefix = split_s3_uri(uri)
    destination.mkdir(parents=True, exist_ok=True)
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix):].lstrip("/") or Path(item["Key"]).name
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(target))
            count += 1
    return count


def _source_dir(s3: Any, hyperparameters: dict[str, Any], code_dir: Path) -> Path:
    """sagemaker_submit_directory unpacked into code/, as the container does; this checkout if not uploaded."""
    uri = hyperparameters.get("sagemaker_submit_directory")
    if isinstance(uri, str) and uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        archive = code_dir.parent / "sourcedir.tar.gz"
        try:
            s3.download_file(bucket, key, str(archive))
        except ClientError as exc:
            logger.info("no training source archive in the emulator; running this checkout's model_build",
                        extra={"source": uri, "error": exc.response.get("Error", {}).get("Code")})
            return CHECKOUT
        code_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(code_dir, filter="data")
        return code_dir
    return CHECKOUT


def pack_model_dir(model_dir: Path, tarball: Path) -> Path:
    """model.tar.gz with the model directory's files at the archive root, as SageMaker packs /opt/ml/model."""
    with tarfile.open(tarball, "w:gz") as archive:
        for path in sorted(model_dir.rglob("*")):
            if path.is_file():
                archive.add(path, arcname=str(path.relative_to(model_dir)))
    return tarball


def _environment(root: Path, job: dict[str, Any], hyperparameters: dict[str, Any], channels: list[str],
                 entry_point: str) -> dict[str, str]:
    user_hps = {k: v for k, v in hyperparameters.items() if not k.startswith(SDK_PREFIX)}
    env = {
        "SM_MODEL_DIR": str(root / "model"),
        "SM_INPUT_DIR": str(root / "input"),
        "SM_INPUT_CONFIG_DIR": str(root / "input" / "config"),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_CHANNELS": json.dumps(channels),
        "SM_HPS": json.dumps(user_hps),
        "SM_USER_ARGS": json.dumps(user_arguments(hyperparameters)),
        "SM_USER_ENTRY_POINT": entry_point,
        "SM_CURRENT_HOST": HOST,
        "SM_HOSTS": json.dumps([HOST]),
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "SM_NUM_GPUS": "0",
        "SM_TRAINING_JOB_NAME": job["TrainingJobName"],
        "PYTHONUNBUFFERED": "1",
    }
    for channel in channels:
        env[f"SM_CHANNEL_{channel.upper()}"] = str(root / "input" / "data" / channel)
    for name, value in user_hps.items():
        env[f"SM_HP_{name.upper().replace('-', '_')}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def train_locally(job: dict[str, Any], *, s3: Any, root: Path) -> LocalRun:
    started = datetime.now(UTC)
    hyperparameters = decode_hyperparameters(job.get("HyperParameters") or {})
    entry_point = str(hyperparameters.get("sagemaker_program") or "")
    if not entry_point:
        return LocalRun("Failed", "Failed", started, datetime.now(UTC), "ClientError: no sagemaker_program")
    config_dir = root / "input" / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("model", "output/data"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (config_dir / "hyperparameters.json").write_text(json.dumps(job.get("HyperParameters") or {}))
    (config_dir / "resourceconfig.json").write_text(json.dumps({"current_host": HOST, "hosts": [HOST],
                                                               "network_interface_name": "eth0"}))
    channels, input_config = [], {}
    for channel in job.get("InputDataConfig", []):
        name = channel["ChannelName"]
        source = channel["DataSource"]["S3DataSource"]
        _download_prefix(s3, source["S3Uri"], root / "input" / "data" / name)
        channels.append(name)
        input_config[name] = {"ContentType": channel.get("ContentType", ""), "TrainingInputMode": "File",
                              "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
                              "RecordWrapperType": "None"}
    (config_dir / "inputdataconfig.json").write_text(json.dumps(input_config))
    code_dir = _source_dir(s3, hyperparameters, root / "code")

    log_file = root / "output" / "training.log"
    command = [sys.executable, entry_point, *user_arguments(hyperparameters)]
    max_runtime = int((job.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds", 86400))
    logger.info("local training job running", extra={"job_name": job["TrainingJobName"], "command": command,
                                                     "code_dir": str(code_dir), "log": str(log_file)})
    with log_file.open("wb") as log:
        process = subprocess.Popen(command, cwd=code_dir, stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                                   stdin=subprocess.DEVNULL,
                                   env=os.environ | _environment(root, job, hyperparameters, channels, entry_point))
        try:
            code = process.wait(timeout=max_runtime)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return LocalRun("Stopped", "MaxRuntimeExceeded", started, datetime.now(UTC),
                            f"the job ran longer than MaxRuntimeInSeconds ({max_runtime})", log_file=log_file)
    if code != 0:
        failure = root / "output" / "failure"
        reported = failure.read_text(errors="replace").strip() if failure.is_file() else ""
        tail = log_file.read_text(errors="replace")[-LOG_TAIL_CHARS:].strip()
        reason = f"AlgorithmError: ExitCode {code}: {reported or tail}"
        return LocalRun("Failed", "Failed", started, datetime.now(UTC), reason, log_file=log_file)
    bucket, prefix = split_s3_uri(job["OutputDataConfig"]["S3OutputPath"])
    key = f"{prefix.rstrip('/')}/{job['TrainingJobName']}/output/model.tar.gz".lstrip("/")
    tarball = pack_model_dir(root / "model", root / "model.tar.gz")
    s3.upload_file(str(tarball), bucket, key)
    return LocalRun("Completed", "Completed", started, datetime.now(UTC), model_artifacts=f"s3://{bucket}/{key}",
                    log_file=log_file)


def _millis(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def state_change_event(job: dict[str, Any], run: LocalRun) -> dict[str, Any]:
    """The EventBridge event SageMaker sends when a training job ends (same fields, times in epoch ms)."""
    arn = job["TrainingJobArn"]
    _, _, _, region, account, _ = arn.split(":", 5)
    copied = ("HyperParameters", "AlgorithmSpecification", "RoleArn", "InputDataConfig", "OutputDataConfig",
              "ResourceConfig", "StoppingCondition", "EnableManagedSpotTraining")
    detail: dict[str, Any] = {
        "TrainingJobName": job["TrainingJobName"], "TrainingJobArn": arn,
        "TrainingJobStatus": run.status, "SecondaryStatus": run.secondary_status,
        **{name: job[name] for name in copied if name in job},
        "CreationTime": _millis(job.get("CreationTime") or run.started),
        "TrainingStartTime": _millis(run.started), "TrainingEndTime": _millis(run.ended),
        "LastModifiedTime": _millis(run.ended),
        "SecondaryStatusTransitions": [
            {"Status": "Training", "StartTime": _millis(run.started), "EndTime": _millis(run.ended),
             "StatusMessage": "Training image download completed. Training in progress."},
            {"Status": run.secondary_status, "StartTime": _millis(run.ended),
             "StatusMessage": run.failure_reason or "Training job completed"},
        ],
        "Tags": {},
    }
    if run.model_artifacts:
        detail["ModelArtifacts"] = {"S3ModelArtifacts": run.model_artifacts}
    if run.failure_reason:
        detail["FailureReason"] = run.failure_reason
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "SageMaker Training Job State Change",
            "source": "aws.sagemaker", "account": account, "time": run.ended.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region, "resources": [arn], "detail": detail}


def promote_with_handler(event: dict[str, Any]) -> dict[str, Any]:
    from categorizer.handlers.promote import handler

    return handler(event, LocalLambdaContext(function_name="categorizer-local-promote", memory_limit_in_mb=3008,
                                             timeout_seconds=900))


def run_training_job(job_name: str, *, endpoint: str | None = None, workdir: Path | None = None,
                     promote: Callable[[dict[str, Any]], dict[str, Any]] = promote_with_handler,
                     keep_workdir: bool = False) -> dict[str, Any]:
    """Train the job locally, send its state-change event to `promote`; returns what happened."""
    session = {"endpoint_url": endpoint} if endpoint else {}
    sagemaker, s3 = boto3.client("sagemaker", **session), boto3.client("s3", **session)
    job = sagemaker.describe_training_job(TrainingJobName=job_name)
    root = Path(tempfile.mkdtemp(prefix=f"{job_name}-", dir=workdir))
    clock = time.monotonic()
    try:
        run = train_locally(job, s3=s3, root=root)
        event = state_change_event(job, run)
        log_tail = run.log_file.read_text(errors="replace")[-LOG_TAIL_CHARS:] if run.log_file else ""
        seconds = round(time.monotonic() - clock, 1)
        logger.info("local training job ended", extra={"job_name": job_name, "status": run.status,
                                                       "seconds": seconds, "failure_reason": run.failure_reason})
        outcome = promote(event)
    finally:
        if not keep_workdir:
            shutil.rmtree(root, ignore_errors=True)
    return {"job_name": job_name, "status": run.status, "training_seconds": seconds,
            "model_artifacts": run.model_artifacts, "failure_reason": run.failure_reason, "event": event,
            "log_tail": log_tail, "promotion": outcome}
