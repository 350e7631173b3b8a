"""Small helpers to read synthesized CloudFormation: render intrinsic functions as readable strings."""

from __future__ import annotations

import re
from typing import Any


def render(value: Any) -> str:
    """`{"Fn::GetAtt": ["Bucket1", "Arn"]}` -> "Bucket1.Arn"; joins rendered; `{"Ref": "X"}` -> "X"."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            return f"{logical_id}.{attribute}"
        if "Ref" in value:
            return value["Ref"]
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(render(part) for part in parts)
        if "Fn::Sub" in value:
            return value["Fn::Sub"].replace("${", "").replace("}", "")
        if "Fn::FindInMap" in value:
            return "FindInMap(" + ",".join(render(part) for part in value["Fn::FindInMap"]) + ")"
    raise ValueError(f"cannot render {value!r}")


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def logical_id(resources: dict[str, dict], stem: str, type_: str | None = None) -> str:
    """The logical id `<stem><8 hex digits>` (CDK's naming of a construct path), of the given type."""
    pattern = re.compile(re.escape(stem) + "[0-9A-F]{8}")
    matches = [k for k, r in resources.items() if pattern.fullmatch(k) and (type_ is None or r["Type"] == type_)]
    if len(matches) != 1:
        raise AssertionError(f"expected one {type_ or 'resource'} named {stem}<hash>, found {matches}")
    return matches[0]


def role_statements(resources: dict[str, dict], role_id: str) -> list[dict]:
    """Every statement of every IAM policy attached to the role (inline policies and AWS::IAM::Policy)."""
    statements: list[dict] = []
    for policy in resources[role_id]["Properties"].get("Policies", []):
        statements += policy["PolicyDocument"]["Statement"]
    for resource in resources.values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role_id} in resource["Properties"].get("Roles", []):
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
    return statements


def grants(resources: dict[str, dict], role_id: str) -> set[tuple[str, str]]:
    """The (action, resource) pairs a role is allowed, with conditions appended to the resource text."""
    pairs: set[tuple[str, str]] = set()
    for statement in role_statements(resources, role_id):
        assert statement["Effect"] == "Allow", statement
        condition = statement.get("Condition")
        suffix = ""
        if condition:
            suffix = " if " + ";".join(f"{op}:{key}={sorted(render(v) for v in as_list(vals))}"
                                       for op, body in sorted(condition.items())
                                       for key, vals in sorted(body.items()))
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                pairs.add((action, render(resource) + suffix))
    return pairs
