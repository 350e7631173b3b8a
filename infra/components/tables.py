"""DynamoDB tables from the shared specs in infra.config: on-demand, PITR, encrypted, deletion-protected in prod."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from categorizer.contract.names import IndexShape, KeyAttribute
from infra.config import TableSpec

_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER,
          "B": dynamodb.AttributeType.BINARY}


def _attribute(key: KeyAttribute | None) -> dynamodb.Attribute | None:
    return dynamodb.Attribute(name=key.name, type=_TYPES[key.type]) if key else None


class Table(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, spec: TableSpec, retain: bool) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        self.table = dynamodb.TableV2(
            self, "Table",
            table_name=spec.name,
            partition_key=_attribute(spec.shape.partition_key),
            sort_key=_attribute(spec.shape.sort_key),
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            time_to_live_attribute=spec.shape.ttl_attribute,
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(index_name=index.name,
                                                     partition_key=_attribute(index.partition_key),
                                                     sort_key=_attribute(index.sort_key),
                                                     projection_type=dynamodb.ProjectionType.ALL)
                for index in spec.shape.indexes] or None,
            # Retained on delete and replace, but not after a failed first create: deletion protection would
            # stop that rollback (DeleteTable refuses), so the stack's termination protection guards it instead.
            removal_policy=cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if retain else cdk.RemovalPolicy.DESTROY,
        )

    def grant(self, grantee: iam.IGrantable, *actions: str, indexes: bool | Sequence[IndexShape] = False) -> None:
        """Exact DynamoDB actions on this table, or (`indexes`) on its indexes, named, e.g. a Query: True for each
        of them, or only those given."""
        if indexes is True:
            indexes = self.spec.shape.indexes
        for index in indexes or ():
            if index not in self.spec.shape.indexes:
                raise ValueError(f"{self.spec.name} has no index {index.name!r}")
        resources = ([f"{self.table.table_arn}/index/{index.name}" for index in indexes] if indexes
                     else [self.table.table_arn])
        grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            actions=[f"dynamodb:{action}" for action in actions], resources=resources,
        ))


class Tables(Construct):
    """The feedback table and the review queue (docs/api.md has both key designs). Batch idempotency needs no
    table: it keys on the manifest."""

    def __init__(self, scope: Construct, construct_id: str, *, specs: Sequence[TableSpec], retain: bool) -> None:
        super().__init__(scope, construct_id)
        by_name = {spec.logical_name: spec for spec in specs}
        self.feedback = Table(self, "Feedback", spec=by_name["feedback"], retain=retain)
        self.review = Table(self, "Review", spec=by_name["review"], retain=retain)
