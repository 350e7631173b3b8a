"""The model registry: the model bucket (bundles, training data, job outputs, decisions) and the grants on the
champion pointer, an SSM parameter per stage holding `{"version": ..., "key": ...}` of the serving bundle.

The pointer is not a CloudFormation resource: CloudFormation would own its value and rewrite it to a placeholder
on any change to its tags, description or tier, unpublishing the model on an unrelated deploy. The publish
step creates it (docs/deploy.md), promotions move it, and the stack only grants access to its name."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import config
from infra.components.storage import READ_OBJECT_ACTIONS, WRITE_OBJECT_ACTIONS, grant_list, grant_objects, secure_bucket


class ModelRegistry(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, names: config.ResourceNames,
                 stage: config.StageConfig, access_logs: s3.IBucket, removal_policy: cdk.RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.bucket = secure_bucket(
            self, "Bucket", bucket_name=names.model_bucket, removal_policy=removal_policy,
            access_logs=access_logs, versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-old-versions", noncurrent_version_expiration=cdk.Duration.days(
                    stage.noncurrent_version_expiration_days)),
                # Raw job outputs are copied into models/<version>/ when promoted or kept as candidates.
                s3.LifecycleRule(id="expire-job-outputs", prefix=config.TRAINING_OUTPUT_PREFIX,
                                 expiration=cdk.Duration.days(90)),
            ],
        )
        # Until a model is published the parameter does not exist: the functions answer 503 "model unavailable".
        self.champion_parameter_name = names.champion_parameter
        self.champion_parameter_arn = cdk.Stack.of(self).format_arn(
            service="ssm", resource="parameter", resource_name=names.champion_parameter.lstrip("/"))

    def grant_read(self, grantee: iam.IGrantable, *prefixes: str) -> None:
        grant_objects(self.bucket, grantee, actions=READ_OBJECT_ACTIONS, prefixes=prefixes)
        grant_list(self.bucket, grantee, prefixes=prefixes)

    def grant_write(self, grantee: iam.IGrantable, *prefixes: str) -> None:
        grant_objects(self.bucket, grantee, actions=WRITE_OBJECT_ACTIONS, prefixes=prefixes)

    def grant_read_champion(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            actions=["ssm:GetParameter"], resources=[self.champion_parameter_arn]))

    def grant_set_champion(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            actions=["ssm:GetParameter", "ssm:PutParameter"], resources=[self.champion_parameter_arn]))
