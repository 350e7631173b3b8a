"""CDK local bundlers (jsii ILocalBundling) for the dependency layer, the function code and the SageMaker source
archive."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import jsii

from infra.layer_build import build_function_code, build_layer, write_training_source


@jsii.implements(cdk.ILocalBundling)
class PipLayerBundling:
    """Local bundling of a Lambda layer from layers/<name>/requirements.txt."""

    def __init__(self, requirements: Path) -> None:
        self._requirements = requirements

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:  # jsii passes options positionally
        build_layer(self._requirements, Path(output_dir))
        return True


@jsii.implements(cdk.ILocalBundling)
class FunctionCodeBundling:
    """Local bundling of the function code: functions/ with bytecode for the Lambda runtime's Python."""

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:
        build_function_code(Path(output_dir))
        return True


@jsii.implements(cdk.ILocalBundling)
class TrainingSourceBundling:
    """Local bundling of the SageMaker source archive (a single-file asset)."""

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:
        write_training_source(Path(output_dir) / "sourcedir.tar.gz")
        return True
