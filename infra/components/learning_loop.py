"""The learning loop: SageMaker training role and source, the retraining schedule, the state-change rule.

EventBridge schedule -> start-training function -> SageMaker training job (script mode, AWS PyTorch image,
spot) -> "SageMaker Training Job State Change" -> promote function. Asynchronous invocations that still fail
after their retries land in a failure queue (alarmed), never silently.
"""

from __future__ import annotations

import hashlib

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import config
from infra.bundling import TrainingSourceBundling
from infra.components.nag import acknowledge, acknowledge_iam5_resources, arn_token
from infra.components.storage import READ_OBJECT_ACTIONS, WRITE_OBJECT_ACTIONS
from infra.layer_build import FUNCTIONS_DIR, MODEL_BUILD_DIR, TRAINING_REQUIREMENTS

TERMINAL_STATES = ("Completed", "Failed", "Stopped")


def training_source_hash() -> str:
    """Content hash of what goes into sourcedir.tar.gz (a custom hash: the archive mixes two directories)."""
    digest = hashlib.sha256()
    files = sorted([*MODEL_BUILD_DIR.rglob("*.py"), *(FUNCTIONS_DIR / "categorizer").rglob("*.py"),
                    TRAINING_REQUIREMENTS])
    for path in files:
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(FUNCTIONS_DIR.parent)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class TrainingResources(Construct):
    """What a training job runs as and with: its role, the entrypoint archive, the framework image."""

    def __init__(self, scope: Construct, construct_id: str, *, names: config.ResourceNames,
                 stage: config.StageConfig, model_bucket: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.source = s3_assets.Asset(
            self, "Source", path=str(MODEL_BUILD_DIR),
            asset_hash_type=cdk.AssetHashType.CUSTOM, asset_hash=training_source_hash(),
            bundling=cdk.BundlingOptions(
                image=cdk.DockerImage.from_registry("public.ecr.aws/docker/library/python:3.12-slim"),
                local=TrainingSourceBundling(), output_type=cdk.BundlingOutput.SINGLE_FILE,
            ),
        )
        if cdk.Token.is_unresolved(stack.region):
            # An environment-agnostic stack: the region is known at deploy time, so look it up there (a region
            # without an image then fails on the lookup; `categorizer preflight` says so before any deploy).
            registry = cdk.CfnMapping(self, "DlcRegistry", mapping={
                region: {"account": account} for region, account in config.DLC_REGISTRY_ACCOUNTS.items()})
            registry_account = registry.find_in_map(cdk.Aws.REGION, "account")
        else:
            registry_account = config.dlc_account(stack.region)  # a region without an image fails the synth
        self.image_uri = config.training_image_uri(
            repository=stage.training_image_repository, tag=stage.training_image_tag, region=stack.region,
            registry_account=registry_account)
        job_arn_pattern = stack.format_arn(service="sagemaker", resource="training-job",
                                           resource_name=f"{names.training_job_prefix}-*")
        self.job_arn_pattern = job_arn_pattern

        self.role = iam.Role(
            self, "Role", role_name=names.sagemaker_role,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com", conditions={
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": job_arn_pattern},
            }),
            description="Runs categorizer training jobs: reads training data, writes the job output",
        )
        training_data = model_bucket.arn_for_objects(f"{config.TRAINING_PREFIX}*")
        job_output = model_bucket.arn_for_objects(f"{config.TRAINING_OUTPUT_PREFIX}*")
        log_group_arn = stack.format_arn(service="logs", resource="log-group",
                                         resource_name="/aws/sagemaker/TrainingJobs",
                                         arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
        image_repository_arn = stack.format_arn(service="ecr", account=registry_account, resource="repository",
                                                resource_name=stage.training_image_repository)
        statements = [
            iam.PolicyStatement(sid="ReadTrainingData", actions=list(READ_OBJECT_ACTIONS),
                                resources=[training_data]),
            iam.PolicyStatement(sid="ListTrainingData", actions=["s3:ListBucket"],
                                resources=[model_bucket.bucket_arn],
                                conditions={"StringLike": {"s3:prefix": [f"{config.TRAINING_PREFIX}*",
                                                                         f"{config.TRAINING_OUTPUT_PREFIX}*"]}}),
            iam.PolicyStatement(sid="WriteJobOutput", actions=list(WRITE_OBJECT_ACTIONS), resources=[job_output]),
            iam.PolicyStatement(sid="ReadSource", actions=["s3:GetObject"], resources=[
                self.source.bucket.arn_for_objects(self.source.s3_object_key)]),
            iam.PolicyStatement(sid="PullFrameworkImage", actions=[
                "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
                resources=[image_repository_arn]),
            iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(sid="JobLogs", actions=[
                "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[log_group_arn, f"{log_group_arn}:log-stream:*"]),
            iam.PolicyStatement(sid="JobMetrics", actions=["cloudwatch:PutMetricData"], resources=["*"],
                                conditions={"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}}),
        ]
        for statement in statements:
            self.role.add_to_policy(statement)
        policy = self.role.node.find_child("DefaultPolicy")
        acknowledge_iam5_resources(policy, [
            f"{arn_token(model_bucket)}/{config.TRAINING_PREFIX}*",
            f"{arn_token(model_bucket)}/{config.TRAINING_OUTPUT_PREFIX}*",
        ], "The job reads the training channels and writes its output under fixed prefixes of the model bucket.")
        acknowledge(policy, "AwsSolutions-IAM5[Resource::*]",
                    "ecr:GetAuthorizationToken has no resource-level permissions; cloudwatch:PutMetricData is "
                    "limited by a namespace condition.")
        acknowledge(policy, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
                            "<AWS::AccountId>:log-group:/aws/sagemaker/TrainingJobs:log-stream:*]",
                    "SageMaker names one log stream per job at run time, in its fixed log group.")

    def grant_start_jobs(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:AddTags"],
            resources=[self.job_arn_pattern]))
        grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=[self.role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))

    def grant_describe_jobs(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            actions=["sagemaker:DescribeTrainingJob"], resources=[self.job_arn_pattern]))

    @property
    def source_uri(self) -> str:
        return self.source.s3_object_url


class LearningLoopTriggers(Construct):
    """The schedule and the state-change rule, with failure handling for both asynchronous invocations."""

    def __init__(self, scope: Construct, construct_id: str, *, names: config.ResourceNames,
                 stage: config.StageConfig, start_training: lambda_.Function, promote: lambda_.Function) -> None:
        super().__init__(scope, construct_id)
        self.failures = sqs.Queue(
            self, "Failures", queue_name=names.learning_loop_failures,
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            retention_period=cdk.Duration.days(stage.dlq_retention_days),
        )
        for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"):
            acknowledge(self.failures, rule, "This queue is itself the dead-letter queue / on-failure "
                                             "destination of the learning loop.")
        for function in (start_training, promote):
            function.configure_async_invoke(
                on_failure=destinations.SqsDestination(self.failures), retry_attempts=2,
                max_event_age=cdk.Duration.hours(6),
            )
            acknowledge(function, "Serverless-LambdaDLQ",
                        "Asynchronous failures go to an on-failure destination (the failures queue), which "
                        "supersedes a function DLQ and records the error with the event.")

        self.schedule = events.Rule(
            self, "RetrainSchedule", rule_name=f"{names.training_job_prefix}-retrain",
            description="Starts a retraining (feedback export + SageMaker job) on the stage's schedule",
            schedule=events.Schedule.expression(stage.retrain_schedule), enabled=stage.retrain_enabled,
            targets=[targets.LambdaFunction(start_training, dead_letter_queue=self.failures, retry_attempts=2,
                                            max_event_age=cdk.Duration.hours(6))],
        )
        self.job_state = events.Rule(
            self, "TrainingJobStateChange", rule_name=f"{names.training_job_prefix}-job-state",
            description="Finished categorizer training jobs -> the promote function",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"], detail_type=["SageMaker Training Job State Change"],
                detail={"TrainingJobName": [{"prefix": f"{names.training_job_prefix}-"}],
                        "TrainingJobStatus": list(TERMINAL_STATES)},
            ),
            targets=[targets.LambdaFunction(promote, dead_letter_queue=self.failures, retry_attempts=2,
                                            max_event_age=cdk.Duration.hours(6))],
        )
