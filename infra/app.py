"""The CDK app: `cdk synth -c stage=dev` (or prod, or all). cdk-nag runs on every synth.

Context:
- `stage`: dev (default), prod, or `all` (both stacks in one assembly, as CI checks them).
- `skip_bundling`: true to skip building the dependency layer and the training archive (fast checks). The CLI
  refuses `aws:` context keys, so this is the way to set `aws:cdk:bundling-stacks` from the command line.
"""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from infra import config
from infra.stack import CategorizerStack

BUNDLING_STACKS_KEY = "aws:cdk:bundling-stacks"
# Feature flags set in code (not only in cdk.json) so that tests, which build the app without the CLI, synthesize
# exactly what `cdk synth` does.
FEATURE_FLAGS = {
    "@aws-cdk/core:checkSecretUsage": True,
    "@aws-cdk/core:target-partitions": ["aws"],
    "@aws-cdk/core:enablePartitionLiterals": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    "@aws-cdk/aws-s3:createDefaultLoggingPolicy": True,
}


def new_app(*, outdir: str | None = None, **context: object) -> cdk.App:
    """An App with the project's feature flags; extra context (e.g. stage, skip_bundling) on top."""
    return cdk.App(outdir=outdir, context={**FEATURE_FLAGS, **context})


def selected_stages(app: cdk.App) -> list[str]:
    requested = str(app.node.try_get_context("stage") or "dev")
    if requested == "all":
        return list(config.DEPLOYABLE_STAGES)
    if requested not in config.DEPLOYABLE_STAGES:
        raise ValueError(f"stage must be one of {config.DEPLOYABLE_STAGES} or 'all', not {requested!r}")
    return [requested]


def _truthy(value: object) -> bool:
    return str(value).lower() in {"1", "true", "yes"}


def refuse_skip_bundling_for_deploys(app: cdk.App) -> None:
    """skip_bundling leaves the code asset as raw source folders: fine to synthesize and test, never to deploy.

    The CDK CLI names the stacks it bundles: `cdk synth` bundles all ("**"), `cdk deploy` the ones it deploys.
    Tests build the app without the CLI (no such context)."""
    bundling = app.node.try_get_context(BUNDLING_STACKS_KEY)
    if bundling is not None and list(bundling) != ["**"]:
        raise ValueError("skip_bundling is for `cdk synth` and the tests only: a deploy would ship the raw "
                         f"source folders to Lambda. Drop `-c skip_bundling=...` (stacks: {list(bundling)})")


def register_checks(app: cdk.App) -> None:
    """cdk-nag's AwsSolutions and Serverless packs: any unacknowledged finding fails the synth."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))


def build(app: cdk.App, stages: list[str] | None = None) -> dict[str, CategorizerStack]:
    """Add the stacks to `app`, with cdk-nag registered before anything can synthesize."""
    if _truthy(app.node.try_get_context("skip_bundling")):
        refuse_skip_bundling_for_deploys(app)
        app.node.set_context(BUNDLING_STACKS_KEY, [])
    register_checks(app)
    stacks = {}
    for name in stages or selected_stages(app):
        stage = config.load_stage(name)
        stack = CategorizerStack(app, f"Categorizer-{name}", stage=stage)
        cdk.Tags.of(stack).add("app", config.APP_NAME)
        cdk.Tags.of(stack).add("stage", name)
        stacks[name] = stack
    return stacks


def main() -> None:
    app = new_app()
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
