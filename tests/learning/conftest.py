"""Learning-loop fixtures: moto (in process) with the stage's bucket, feedback table and champion parameter,
and the start-training and promote functions built from the settings infra gives them on the dev stage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from categorizer.contract.names import FEEDBACK_TABLE
from tests.learning.support import (
    BUCKET,
    PARAMETER,
    REGION,
    TABLE,
    Stage,
    reset_learning_functions,
    use_learning_functions,
)


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    with mock_aws():
        s3, ssm = boto3.client("s3", region_name=REGION), boto3.client("ssm", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        dynamodb.create_table(**FEEDBACK_TABLE.create_table_kwargs(TABLE))
        ssm.put_parameter(Name=PARAMETER, Value="none", Type="String")  # infra's placeholder before a publish
        start, decide = use_learning_functions(tmp_path / "cache")
        yield Stage(s3=s3, ssm=ssm, dynamodb=dynamodb, sagemaker=boto3.client("sagemaker", region_name=REGION),
                    cache_dir=tmp_path / "cache", start_settings=start, settings=decide)
        reset_learning_functions()


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
