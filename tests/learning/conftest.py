"""Learning-loop fixtures: moto (in process) with the stage's bucket, feedback table and champion parameter,
and the environment infra gives the start-training and promote functions."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from categorizer.adapters.feedback_table import TABLE_SCHEMA
from categorizer.observability import logger
from tests.learning.support import BUCKET, PARAMETER, REGION, TABLE, Stage, clear_caches, function_environment


@pytest.fixture
def stage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Stage]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("MODEL_DIR", raising=False)
    for name, value in function_environment(tmp_path / "cache").items():
        monkeypatch.setenv(name, value)
    clear_caches()
    with mock_aws():
        s3, ssm = boto3.client("s3", region_name=REGION), boto3.client("ssm", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        dynamodb.create_table(TableName=TABLE, **TABLE_SCHEMA)
        ssm.put_parameter(Name=PARAMETER, Value="none", Type="String")  # infra's placeholder before a publish
        yield Stage(s3=s3, ssm=ssm, dynamodb=dynamodb, sagemaker=boto3.client("sagemaker", region_name=REGION),
                    cache_dir=tmp_path / "cache")
    clear_caches()


@pytest.fixture(scope="session")
def tiny_tarball(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model_build.bundle import make_tarball

    return make_tarball(tiny_bundle, tmp_path_factory.mktemp("tiny-tar") / "model.tar.gz")


@pytest.fixture
def champion(stage: Stage, tiny_bundle: Path, tiny_tarball: Path) -> str:
    """The tiny bundle published as the stage's champion."""
    decision = stage.registry().publish(tiny_bundle, tiny_tarball, actor="test", reason="first model")
    assert decision is not None
    return decision.version



@pytest.fixture
def log_output() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines the Powertools Logger wrote during the test (its stream was bound before capsys)."""
    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    logger.registered_handler.setStream(previous)
