"""cdk-nag 3.x acknowledgements: every one names the exact finding and says why it is acceptable."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one finding (e.g. `AwsSolutions-IAM5[Resource::*]`) on a construct and its children."""
    if not reason.strip():
        raise ValueError(f"acknowledgement of {rule_id} needs a reason")
    pack = rule_id.split("-", 1)[0]  # "AwsSolutions" or "Serverless": the validation plugin's name
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=f"{pack}::{rule_id}", reason=reason))


def arn_token(resource: IConstruct, attribute: str = "Arn") -> str:
    """How cdk-nag prints a reference to a resource attribute inside an IAM5 finding id: `<LogicalId.Arn>`."""
    stack = cdk.Stack.of(resource)
    default_child = resource.node.default_child if not isinstance(resource, cdk.CfnElement) else resource
    return f"<{stack.get_logical_id(default_child)}.{attribute}>"


def acknowledge_iam5_resources(policy_owner: IConstruct, resources: list[str], reason: str) -> None:
    for resource in resources:
        acknowledge(policy_owner, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
