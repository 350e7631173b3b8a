"""Create the stage's resources on the emulator from infra.config: the same names and settings as the CDK app."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from categorizer_cli.local.config import DEMO_PASSWORD, DEMO_USERNAME, REGION
from infra import config as infra


@dataclass(frozen=True)
class Identity:
    user_pool_id: str
    machine_client_id: str
    machine_client_secret: str
    user_client_id: str


def client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106 - emulator


def provision(endpoint: str, stage: infra.StageConfig, names: infra.ResourceNames) -> Identity:
    """Idempotent: safe to run on a restored emulator."""
    s3, sqs, dynamodb = client("s3", endpoint), client("sqs", endpoint), client("dynamodb", endpoint)
    for bucket in (names.model_bucket, names.ingest_bucket, names.results_bucket, names.access_log_bucket):
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise
    s3.put_bucket_versioning(Bucket=names.ingest_bucket, VersioningConfiguration={"Status": "Enabled"})

    _, queue_arn, _ = create_ingest_queue(sqs, infra.queue_spec(stage, names))
    notify_queue(s3, bucket=names.ingest_bucket, queue_arn=queue_arn)

    existing = set(dynamodb.list_tables()["TableNames"])
    for table in infra.table_specs(names):
        if table.name not in existing:
            dynamodb.create_table(**table.create_table_kwargs())
    return _identity(endpoint, names)


def create_user_pool(idp, *, pool_name: str, machine_client: str, user_client: str) -> tuple[str, str, str]:
    """The stage's pool from infra's one shape (infra.config.USER_POOL): (pool id, machine id, people id).

    The API tests create their pool with this function too, so every pool has the deployed stack's policy."""
    shape = infra.USER_POOL
    pool_id = idp.create_user_pool(PoolName=pool_name, Policies={"PasswordPolicy": shape.password_policy()},
                                   AdminCreateUserConfig={"AllowAdminCreateUserOnly": True})["UserPool"]["Id"]
    idp.create_resource_server(UserPoolId=pool_id, Identifier=infra.RESOURCE_SERVER_ID, Name="Categorizer API",
                               Scopes=[{"ScopeName": name, "ScopeDescription": description}
                                       for name, description in shape.scopes])
    machine = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName=machine_client, GenerateSecret=True,
        AllowedOAuthFlows=["client_credentials"], AllowedOAuthFlowsUserPoolClient=True,
        AllowedOAuthScopes=list(shape.machine_oauth_scopes))["UserPoolClient"]["ClientId"]
    people = idp.create_user_pool_client(UserPoolId=pool_id, ClientName=user_client, GenerateSecret=False,
                                         ExplicitAuthFlows=list(shape.people_auth_flows))["UserPoolClient"]["ClientId"]
    for group, description in shape.groups:
        idp.create_group(UserPoolId=pool_id, GroupName=group, Description=description)
    return pool_id, machine, people


def create_ingest_queue(sqs, spec: infra.QueueSpec) -> tuple[str, str, str]:
    """The ingest queue and its DLQ from infra's QueueSpec (what the CDK construct builds): (url, arn, dlq url)."""
    dlq_url = sqs.create_queue(QueueName=spec.dlq_name, Attributes={
        "MessageRetentionPeriod": str(spec.dlq_retention_seconds)})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=spec.name, Attributes={
        "VisibilityTimeout": str(spec.visibility_timeout_seconds),
        "MessageRetentionPeriod": str(spec.retention_seconds),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receive_count}),
    })["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return queue_url, queue_arn, dlq_url


def notify_queue(s3, *, bucket: str, queue_arn: str) -> None:
    """The ingest bucket's notification (what the IngestNotification construct sets): created objects under the
    ingest prefix go to the queue."""
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{
            "Id": "categorizer-ingest", "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": infra.INGEST_PREFIX}]}},
        }]})


def _identity(endpoint: str, names: infra.ResourceNames) -> Identity:
    idp = client("cognito-idp", endpoint)
    pools = [p for p in idp.list_user_pools(MaxResults=60)["UserPools"] if p["Name"] == names.user_pool]
    if pools:
        pool_id = pools[0]["Id"]
    else:
        pool_id, _, _ = create_user_pool(idp, pool_name=names.user_pool, machine_client=names.machine_client,
                                         user_client=names.user_client)
        idp.admin_create_user(UserPoolId=pool_id, Username=DEMO_USERNAME, MessageAction="SUPPRESS",
                              TemporaryPassword=DEMO_PASSWORD)
        idp.admin_set_user_password(UserPoolId=pool_id, Username=DEMO_USERNAME, Password=DEMO_PASSWORD,
                                    Permanent=True)
        for group, _ in infra.USER_POOL.groups:  # the demo user may do everything
            idp.admin_add_user_to_group(UserPoolId=pool_id, Username=DEMO_USERNAME, GroupName=group)
    clients = {c["ClientName"]: c["ClientId"]
               for c in idp.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]}
    machine_id, user_id = clients[names.machine_client], clients[names.user_client]
    secret = idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=machine_id)["UserPoolClient"]["ClientSecret"]
    return Identity(user_pool_id=pool_id, machine_client_id=machine_id, machine_client_secret=secret,
                    user_client_id=user_id)


def local_registry(endpoint: str, names: infra.ResourceNames):
    from categorizer.adapters.champion_parameter import ChampionParameter
    from categorizer.adapters.model_registry_bucket import ModelBucket
    from categorizer.registry.store import ModelRegistry

    return ModelRegistry(ModelBucket(names.model_bucket, client("s3", endpoint)),
                         ChampionParameter(names.champion_parameter, client("ssm", endpoint)),
                         models_prefix=infra.MODELS_PREFIX, decisions_prefix=infra.DECISIONS_PREFIX)


def publish_default_model(endpoint: str, names: infra.ResourceNames, bundle_dir: Path, *, tarball: Path,
                          data_dir: Path, reason: str = "the default model, published by `make up`") -> str | None:
    """Register the default bundle (champion if there is none yet) and upload the training channels, once.

    Goes through the registry, so a `published` decision starts the promotion history.
    """
    from categorizer.registry.training_data import upload_training_data

    registry = local_registry(endpoint, names)
    registry.publish(bundle_dir, tarball, actor="make up", reason=reason)
    upload_training_data(registry.bucket, training_prefix=infra.TRAINING_PREFIX,
                         base_files=[data_dir / "train.csv"], holdout_files=[data_dir / "test.csv"])
    return registry.champion_version()
