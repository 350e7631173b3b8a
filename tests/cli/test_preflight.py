"""`categorizer preflight`: read-only checks of an account before a deploy, on moto and botocore Stubber (a quota
too low, a missing bootstrap, an unsupported region, names taken), and on the local stack's emulator."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from categorizer_cli.preflight import (
    BOOTSTRAP_PARAMETER,
    Clients,
    Status,
    check_concurrency,
    check_training_image,
    check_training_quota,
    run_preflight,
)
from infra import config

REGION = "eu-west-1"


@pytest.fixture
def account() -> Iterator[Clients]:
    with mock_aws():
        yield Clients.create(region=REGION)


def _by_name(checks) -> dict[str, list]:
    found: dict[str, list] = {}
    for check in checks:
        found.setdefault(check.name, []).append(check)
    return found


def test_an_unbootstrapped_account_fails_with_the_command_that_fixes_it(account: Clients):
    checks = _by_name(run_preflight("dev", region=REGION, clients=account))
    (bootstrap,) = checks["cdk bootstrap"]
    assert bootstrap.status is Status.FAIL
    assert bootstrap.fix == f"npx cdk bootstrap aws://123456789012/{REGION}"


def test_a_ready_account_passes_bootstrap_names_and_image(account: Clients):
    account.ssm.put_parameter(Name=BOOTSTRAP_PARAMETER, Value="27", Type="String")
    checks = _by_name(run_preflight("prod", region=REGION, clients=account))
    assert checks["cdk bootstrap"][0].status is Status.PASS
    assert checks["training image"][0].status is Status.PASS
    assert checks["cognito domain"][0].status is Status.PASS
    assert [c.status for c in checks["bucket name"]] == [Status.PASS] * 4
    # Every check printed one line, none crashed.
    assert all(c.status in set(Status) for group in checks.values() for c in group)


def test_an_old_bootstrap_is_refused(account: Clients):
    account.ssm.put_parameter(Name=BOOTSTRAP_PARAMETER, Value="5", Type="String")
    (bootstrap,) = _by_name(run_preflight("dev", region=REGION, clients=account))["cdk bootstrap"]
    assert bootstrap.status is Status.FAIL and "needs >= 6" in bootstrap.detail


def test_a_bucket_name_taken_by_another_account_fails():
    s3 = boto3.client("s3", region_name=REGION)
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", service_error_code="403", http_status_code=403)
        from categorizer_cli.preflight import check_bucket

        check = check_bucket(Clients(sts=None, ssm=None, lambda_=None, service_quotas=None, cognito=None, s3=s3),
                             "categorizer-prod-models-123456789012-eu-west-1")
    assert check.status is Status.FAIL and "another account" in check.detail


def test_prods_reservations_need_a_raised_concurrency_quota_on_a_new_account():
    """A new account often has 10 (or 50) concurrent executions: 100 + 10 reserved cannot be granted."""
    lambda_ = boto3.client("lambda", region_name=REGION)
    reserved = sum(config.function_sizing(config.load_stage("prod"), f).reserved_concurrency or 0
                   for f in config.FunctionName)
    with Stubber(lambda_) as stub:
        stub.add_response("get_account_settings", {"AccountLimit": {
            "ConcurrentExecutions": 50, "UnreservedConcurrentExecutions": 50}, "AccountUsage": {}})
        check = check_concurrency(Clients(sts=None, ssm=None, lambda_=lambda_, service_quotas=None, cognito=None,
                                          s3=None), reserved)
    assert reserved == 110
    assert check.status is Status.FAIL
    assert "at least 210" in check.fix
    with Stubber(lambda_) as stub:
        stub.add_response("get_account_settings", {"AccountLimit": {
            "ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 1000}, "AccountUsage": {}})
        assert check_concurrency(Clients(sts=None, ssm=None, lambda_=lambda_, service_quotas=None, cognito=None,
                                         s3=None), reserved).status is Status.PASS


def test_a_zero_spot_training_quota_fails_and_an_unlisted_one_is_skipped():
    quotas = boto3.client("service-quotas", region_name=REGION)
    clients = Clients(sts=None, ssm=None, lambda_=None, service_quotas=quotas, cognito=None, s3=None)
    with Stubber(quotas) as stub:
        stub.add_response("list_service_quotas", {"Quotas": [
            {"QuotaName": "ml.m5.xlarge for spot training job usage", "Value": 0.0}]},
            {"ServiceCode": "sagemaker"})
        check = check_training_quota(clients, "ml.m5.xlarge", spot=True)
    assert check.status is Status.FAIL and "ml.m5.xlarge for spot training job usage" in check.fix
    with Stubber(quotas) as stub:
        stub.add_response("list_service_quotas", {"Quotas": []}, {"ServiceCode": "sagemaker"})
        assert check_training_quota(clients, "ml.m5.xlarge", spot=True).status is Status.SKIP


@pytest.mark.parametrize("region", ["eu-central-2", "eu-south-2", "il-central-1", "ca-west-1", "ap-southeast-4",
                                    "ap-southeast-5", "mx-central-1"])
def test_the_newer_regions_have_a_training_image(region: str):
    assert check_training_image(region).status is Status.PASS


def test_an_unsupported_region_fails_with_the_list():
    check = check_training_image("cn-north-1")
    assert check.status is Status.FAIL and "eu-west-1" in check.fix


def test_the_command_prints_one_line_per_check_and_exits_non_zero_on_a_failure(capsys):
    from categorizer_cli.main import main

    with mock_aws():
        code = main(["preflight", "--stage", "prod", "--region", "cn-north-1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  training image" in out and "FAIL  cdk bootstrap" in out
    assert "Traceback" not in out
