"""One synthesized cloud assembly for the whole infra test session (dev and prod stacks, cdk-nag on).

Synth costs tens of seconds on this machine, so it happens once; bundling is skipped (the layer build has its
own tests in test_layer.py, with the real layer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@dataclass
class Synthesized:
    outdir: Path
    stacks: dict[str, Any]  # stage name -> CategorizerStack
    templates: dict[str, dict]  # stage name -> CloudFormation template (JSON)

    def template(self, stage: str):
        from aws_cdk.assertions import Template

        return Template.from_json(self.templates[stage])

    def resources(self, stage: str, type_: str) -> dict[str, dict]:
        return {logical_id: resource for logical_id, resource in self.templates[stage]["Resources"].items()
                if resource["Type"] == type_}


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    from infra.app import BUNDLING_STACKS_KEY, build, new_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = new_app(outdir=str(outdir), **{BUNDLING_STACKS_KEY: [], "stage": "all"})
    stacks = build(app)
    assembly = app.synth()  # cdk-nag runs here: any unacknowledged finding raises
    templates = {stage: assembly.get_stack_by_name(stack.stack_name).template for stage, stack in stacks.items()}
    return Synthesized(outdir=outdir, stacks=stacks, templates=templates)
