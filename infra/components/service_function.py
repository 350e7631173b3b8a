"""A Lambda function the way every categorizer function is built.

Python 3.13 on x86_64 (the layer's wheels), X-Ray tracing, JSON logs into its own log group with a retention,
and its own role that may only write to that log group: every other permission is granted by the stack.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.components.nag import acknowledge
from infra.config import FunctionSizing

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.X86_64


class ServiceFunction(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, function_name: str, handler: str,
                 code: lambda_.Code, layers: list[lambda_.ILayerVersion], environment: dict[str, str],
                 sizing: FunctionSizing, description: str, log_retention: logs.RetentionDays,
                 removal_policy: cdk.RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self, "Logs", log_group_name=f"/aws/lambda/{function_name}", retention=log_retention,
            removal_policy=removal_policy,
        )
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of {function_name}",
        )
        self.role.add_to_policy(iam.PolicyStatement(
            sid="WriteOwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[self.log_group.log_group_arn],
        ))
        self.function = lambda_.Function(
            self, "Function",
            function_name=function_name,
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=code,
            layers=layers,
            environment=environment,
            memory_size=sizing.memory_mb,
            timeout=cdk.Duration.seconds(sizing.timeout_seconds),
            ephemeral_storage_size=cdk.Size.mebibytes(sizing.ephemeral_storage_mb),
            reserved_concurrent_executions=sizing.reserved_concurrency,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
            recursive_loop=lambda_.RecursiveLoop.TERMINATE,
        )
        policy = self.role.node.find_child("DefaultPolicy")
        acknowledge(policy, "AwsSolutions-IAM5[Resource::*]",
                    "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions.")
        acknowledge(self.function, "AwsSolutions-L1",
                    "Python 3.13 on purpose: the dependency layer's wheels (onnxruntime, tokenizers, numpy, "
                    "pydantic-core, cryptography) are built and import-tested for cp313.")
        acknowledge(self.function, "Serverless-LambdaLatestVersion",
                    "Same reason as AwsSolutions-L1: the layer is built for the python3.13 runtime.")

    def acknowledge_synchronous(self, how: str) -> None:
        """For functions never invoked asynchronously: a DLQ or on-failure destination would never be used."""
        acknowledge(self.function, "Serverless-LambdaDLQ",
                    f"Never invoked asynchronously ({how}); failures are handled there.")
