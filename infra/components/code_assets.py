"""The code every function runs: the `categorizer` package and one dependency layer, built without Docker."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.bundling import FunctionCodeBundling, PipLayerBundling
from infra.components.service_function import ARCHITECTURE, RUNTIME
from infra.layer_build import CODE_EXCLUDED_NAMES, FUNCTIONS_DIR, LAYERS_DIR

CODE_EXCLUDES = [f"**/{name}" for name in CODE_EXCLUDED_NAMES]


class CodeAssets(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, layer_name: str, description: str) -> None:
        super().__init__(scope, construct_id)
        requirements = LAYERS_DIR / layer_name / "requirements.txt"
        self.layer = lambda_.LayerVersion(
            self, "Dependencies",
            description=description,
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            code=lambda_.Code.from_asset(
                str(requirements.parent),
                # The hash of requirements.txt and the bundling options: the layer is rebuilt when they change.
                asset_hash_type=cdk.AssetHashType.SOURCE,
                bundling=cdk.BundlingOptions(
                    image=RUNTIME.bundling_image,  # only used if local bundling declined (it never does)
                    local=PipLayerBundling(requirements),
                ),
            ),
        )
        self.code = lambda_.Code.from_asset(
            str(FUNCTIONS_DIR),
            exclude=CODE_EXCLUDES,
            # The hash of the sources (not of the bytecode built from them): the same code, the same asset.
            asset_hash_type=cdk.AssetHashType.SOURCE,
            bundling=cdk.BundlingOptions(image=RUNTIME.bundling_image, local=FunctionCodeBundling()),
        )
