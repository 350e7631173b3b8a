"""`categorizer preflight --stage prod [--region R]`: check an account before `cdk deploy`, read-only.

Each check prints one line, PASS / FAIL / SKIP, and a FAIL says how to fix it. What only a real account
would show (docs/deploy.md, "Findings"): the CDK bootstrap, the Lambda concurrency quota against the stage's
reservations, the SageMaker training quota for the stage's instance type, a Deep Learning Containers image for
the region, and whether the Cognito domain prefix and the bucket names are free. An API the endpoint does not
answer (an emulator without Service Quotas, say) is a SKIP with the reason, never a crash.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

BOOTSTRAP_PARAMETER = "/cdk-bootstrap/hnb659fds/version"  # the default qualifier's version parameter
MIN_BOOTSTRAP_VERSION = 6  # what the synthesized templates' CheckBootstrapVersion rule requires
UNRESERVED_MINIMUM = 100  # Lambda keeps at least this much concurrency unreserved in every account


class Status(StrEnum):
    PASS = "PASS"  # noqa: S105 - a check result, not a password
    FAIL = "FAIL"
    SKIP = "SKIP"  # the account or endpoint cannot answer: checked by hand (docs/deploy.md)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def line(self) -> str:
        fix = f"\n      fix: {self.fix}" if self.fix else ""
        return f"{self.status.value:4}  {self.name:<20} {self.detail}{fix}"


@dataclass(frozen=True)
class Clients:
    """The read-only clients preflight uses (boto3 clients; tests pass moto's or Stubber-wrapped ones)."""

    sts: Any
    ssm: Any
    lambda_: Any
    service_quotas: Any
    cognito: Any
    s3: Any

    @classmethod
    def create(cls, *, region: str, endpoint_url: str | None = None) -> Clients:
        import boto3

        # An emulator takes any key; a real account takes the caller's own (never a key of ours).
        keys = {"aws_access_key_id": "local", "aws_secret_access_key": "local"} if endpoint_url else {}
        session = boto3.session.Session(region_name=region, **keys)

        def client(service: str):
            return session.client(service, endpoint_url=endpoint_url)

        return cls(sts=client("sts"), ssm=client("ssm"), lambda_=client("lambda"),
                   service_quotas=client("service-quotas"), cognito=client("cognito-idp"), s3=client("s3"))


def _error_code(exc: Exception) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else type(exc).__name__


def check_bootstrap(clients: Clients, region: str, account: str) -> Check:
    try:
        version = int(clients.ssm.get_parameter(Name=BOOTSTRAP_PARAMETER)["Parameter"]["Value"])
    except ClientError as exc:
        if _error_code(exc) == "ParameterNotFound":
            return Check("cdk bootstrap", Status.FAIL, f"{region} is not bootstrapped for the CDK",
                         f"npx cdk bootstrap aws://{account}/{region}")
        raise
    if version < MIN_BOOTSTRAP_VERSION:
        return Check("cdk bootstrap", Status.FAIL, f"bootstrap version {version}, the stack needs "
                     f">= {MIN_BOOTSTRAP_VERSION}", f"npx cdk bootstrap aws://{account}/{region} (upgrades it)")
    return Check("cdk bootstrap", Status.PASS, f"bootstrap version {version} (needs >= {MIN_BOOTSTRAP_VERSION})")


def check_concurrency(clients: Clients, reserved: int) -> Check:
    if not reserved:
        return Check("lambda concurrency", Status.PASS, "the stage reserves no concurrency")
    limits = clients.lambda_.get_account_settings()["AccountLimit"]
    unreserved = int(limits["UnreservedConcurrentExecutions"])
    left = unreserved - reserved
    detail = (f"the stage reserves {reserved}; {unreserved} of {limits['ConcurrentExecutions']} are unreserved "
              f"now, {left} would be left (Lambda keeps >= {UNRESERVED_MINIMUM})")
    if left < UNRESERVED_MINIMUM:
        return Check("lambda concurrency", Status.FAIL, detail,
                     f"request a 'Concurrent executions' quota of at least "
                     f"{int(limits['ConcurrentExecutions']) - left + UNRESERVED_MINIMUM} (Service Quotas, "
                     "L-B99A9384), or lower reserved_concurrency for the stage in infra/config.py")
    return Check("lambda concurrency", Status.PASS, detail)


def _quota_value(clients: Clients, name: str) -> float | None:
    paginator = clients.service_quotas.get_paginator("list_service_quotas")
    for page in paginator.paginate(ServiceCode="sagemaker"):
        for quota in page.get("Quotas", []):
            if quota.get("QuotaName") == name:
                return float(quota["Value"])
    return None


def check_training_quota(clients: Clients, instance_type: str, spot: bool) -> Check:
    name = f"{instance_type} for {'spot ' if spot else ''}training job usage"
    value = _quota_value(clients, name)
    if value is None:
        return Check("sagemaker quota", Status.SKIP, f"no quota named {name!r} was listed",
                     "check it in the Service Quotas console (SageMaker)")
    if value < 1:
        return Check("sagemaker quota", Status.FAIL, f"{name} is {value:g}",
                     f"request at least 1 for {name!r} (Service Quotas, SageMaker), or change "
                     "training_instance_type / training_use_spot for the stage")
    return Check("sagemaker quota", Status.PASS, f"{name}: {value:g}")


def check_training_image(region: str) -> Check:
    from infra import config

    if region in config.DLC_REGISTRY_ACCOUNTS:
        return Check("training image", Status.PASS,
                     f"Deep Learning Containers registry {config.DLC_REGISTRY_ACCOUNTS[region]} serves {region}")
    return Check("training image", Status.FAIL, f"no Deep Learning Containers training image in {region}",
                 f"deploy to one of {', '.join(config.DLC_REGIONS)}")


def check_domain_prefix(clients: Clients, prefix: str, pool_name: str) -> Check:
    description = clients.cognito.describe_user_pool_domain(Domain=prefix).get("DomainDescription") or {}
    if not description.get("UserPoolId"):
        return Check("cognito domain", Status.PASS, f"{prefix!r} is free")
    try:
        owner = clients.cognito.describe_user_pool(UserPoolId=description["UserPoolId"])["UserPool"]["Name"]
    except ClientError:
        owner = None
    if owner == pool_name:
        return Check("cognito domain", Status.PASS, f"{prefix!r} is this stage's already (a redeploy)")
    return Check("cognito domain", Status.FAIL, f"{prefix!r} belongs to another user pool",
                 "delete that domain, or change user_pool_domain_prefix in infra/config.py")


def check_bucket(clients: Clients, name: str) -> Check:
    try:
        clients.s3.head_bucket(Bucket=name)
    except ClientError as exc:
        code = _error_code(exc)
        if code in {"404", "NoSuchBucket", "NotFound"}:
            return Check("bucket name", Status.PASS, f"{name} is free")
        if code in {"403", "AccessDenied", "Forbidden"}:
            return Check("bucket name", Status.FAIL, f"{name} exists in another account",
                         "bucket names are global: deploy this stage to the account that owns it")
        raise
    return Check("bucket name", Status.PASS, f"{name} exists in this account (a redeploy)")


def run_preflight(stage_name: str, *, region: str, clients: Clients) -> list[Check]:
    from infra import config

    stage = config.load_stage(stage_name)
    account = clients.sts.get_caller_identity()["Account"]
    names = config.resource_names(stage.name, account=account, region=region)
    reserved = sum(config.function_sizing(stage, f).reserved_concurrency or 0 for f in config.FunctionName)
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("cdk bootstrap", lambda: check_bootstrap(clients, region, account)),
        ("lambda concurrency", lambda: check_concurrency(clients, reserved)),
        ("sagemaker quota", lambda: check_training_quota(clients, stage.learning.training_instance_type,
                                                         stage.learning.training_use_spot)),
        ("training image", lambda: check_training_image(region)),
        ("cognito domain", lambda: check_domain_prefix(clients, names.user_pool_domain_prefix, names.user_pool)),
        *(("bucket name", lambda bucket=bucket: check_bucket(clients, bucket)) for bucket in (
            names.model_bucket, names.ingest_bucket, names.results_bucket, names.access_log_bucket)),
    ]
    results = []
    for name, check in checks:
        try:
            results.append(check())
        except (ClientError, BotoCoreError, KeyError, NotImplementedError) as exc:  # an API it cannot answer
            results.append(Check(name, Status.SKIP, f"could not be checked: {_error_code(exc) or exc}",
                                 "check it by hand (docs/deploy.md, first deploy)"))
    return results


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("preflight", help="check an AWS account before `cdk deploy` (read-only)")
    parser.add_argument("--stage", default="dev", help="dev or prod (local: the local stack's emulator)")
    parser.add_argument("--region", help="default: the AWS CLI's region")
    parser.add_argument("--endpoint-url", help="an AWS-compatible endpoint (the local stack's emulator)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import boto3

    endpoint = args.endpoint_url
    if args.stage == "local" and endpoint is None:
        from categorizer_cli.stack_client import Stack

        endpoint = Stack.load().outputs.get("AwsEndpointUrl")
    region = args.region or boto3.session.Session().region_name or "us-east-1"
    try:
        checks = run_preflight(args.stage, region=region,
                               clients=Clients.create(region=region, endpoint_url=endpoint))
    except (ClientError, BotoCoreError) as exc:  # no credentials, or the account cannot be identified
        print(f"preflight: cannot identify the AWS account ({exc}); configure credentials (aws configure, "
              "AWS_PROFILE) for the account you will deploy to")
        return 2
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.status is Status.FAIL]
    print(f"{len(checks) - len(failed)} of {len(checks)} checks passed or skipped; "
          + ("fix the FAIL lines before `cdk deploy`." if failed else "ready to deploy."))
    return 1 if failed else 0
