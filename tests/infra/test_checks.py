"""cdk-nag (AwsSolutions + Serverless) and cfn-lint on the synthesized app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest

pytestmark = pytest.mark.slow  # one synth of both stacks per session (tests/infra/conftest.py)

ROOT = Path(__file__).resolve().parents[2]
CFN_LINT_CONFIG = ROOT / "infra" / "cfnlintrc.yaml"


def test_the_app_synthesizes_with_zero_unacknowledged_nag_findings(synthesized):
    # The fixture's app.synth() raises on any finding; the report it leaves says which plugins ran.
    report = json.loads((synthesized.outdir / "validation-report.json").read_text())
    assert [r for r in report["pluginReports"] if r.get("violations")] == []
    assert sorted(synthesized.templates) == ["dev", "prod"]


def test_every_acknowledgement_names_a_pack_rule_and_gives_a_reason(synthesized):
    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acknowledged = {}
    for stack in synthesized.stacks.values():
        for construct in stack.node.find_all():
            for entry in construct.node.metadata:
                if entry.type == key:
                    acknowledged |= {f"{construct.node.path} {rule}": reason for rule, reason in entry.data.items()}
    assert acknowledged
    for where, reason in acknowledged.items():
        rule = where.split(" ", 1)[1]
        assert rule.startswith(("AwsSolutions::AwsSolutions-", "Serverless::Serverless-")), where
        assert len(reason.split()) >= 5, f"{where}: the reason must say why ({reason!r})"


def test_nag_fails_the_synth_of_a_non_compliant_resource(tmp_path):
    """The same registration the app uses catches a violation (registered before synth, it cannot pass silently)."""
    from aws_cdk import aws_s3 as s3

    from infra.app import new_app, register_checks

    app = new_app(outdir=str(tmp_path))
    register_checks(app)
    stack = cdk.Stack(app, "NonCompliant")
    s3.Bucket(stack, "PlainBucket")  # no TLS-only policy, no access logs
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for r in report["pluginReports"] for v in r["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


def test_cfn_lint_finds_no_errors_or_warnings_in_the_templates(synthesized):
    templates = sorted(synthesized.outdir.glob("Categorizer-*.template.json"))
    assert len(templates) == 2
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--config-file", str(CFN_LINT_CONFIG), *map(str, templates)],
        capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
