"""S3 buckets: SSL only, public access blocked, encrypted, access-logged, with lifecycle rules.

Grants are by key prefix and list exact actions (no `s3:*`, no `s3:GetObject*`).
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

READ_OBJECT_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
WRITE_OBJECT_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")


def secure_bucket(scope: Construct, construct_id: str, *, bucket_name: str, removal_policy: cdk.RemovalPolicy,
                  access_logs: s3.IBucket | None, versioned: bool,
                  lifecycle_rules: Sequence[s3.LifecycleRule], incomplete_upload_days: int = 2) -> s3.Bucket:
    bucket = s3.Bucket(
        scope, construct_id,
        bucket_name=bucket_name,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        versioned=versioned,
        lifecycle_rules=[
            s3.LifecycleRule(id="abort-incomplete-uploads",
                             abort_incomplete_multipart_upload_after=cdk.Duration.days(incomplete_upload_days)),
            *lifecycle_rules,
        ],
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=f"{construct_id.lower()}/" if access_logs else None,
        removal_policy=removal_policy,
        # A stage meant to be torn down (dev) empties its buckets on `cdk destroy`, which otherwise fails on
        # "bucket not empty"; retained buckets (prod) keep everything.
        auto_delete_objects=removal_policy == cdk.RemovalPolicy.DESTROY,
    )
    return bucket


class AccessLogBucket(Construct):
    """The target of every other bucket's server access logs."""

    def __init__(self, scope: Construct, construct_id: str, *, bucket_name: str, expiration_days: int,
                 removal_policy: cdk.RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.bucket = secure_bucket(
            self, "Bucket", bucket_name=bucket_name, removal_policy=removal_policy, access_logs=None,
            versioned=False,
            lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=cdk.Duration.days(expiration_days))],
        )


def grant_objects(bucket: s3.IBucket, grantee: iam.IGrantable, *, actions: Sequence[str],
                  prefixes: Sequence[str]) -> None:
    grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        actions=list(actions), resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in prefixes],
    ))


def grant_list(bucket: s3.IBucket, grantee: iam.IGrantable, *, prefixes: Sequence[str]) -> None:
    """ListBucket limited to prefixes (it also turns a missing key's 403 into a 404)."""
    grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
        conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
    ))
