"""Build the dependency layer the way `cdk synth` does, import-check it on Python 3.13, record its size.

    .venv/bin/python -m infra.measure_layer        # writes infra/layer-size.json

Lambda's limit is 250 MB unzipped for the function code plus all its layers.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infra import config
from infra.layer_build import (
    FUNCTIONS_DIR,
    LAMBDA_PYTHON,
    LAYERS_DIR,
    build_function_code,
    build_layer,
    compile_for_lambda,
    directory_size,
    find_lambda_python,
    pip_install_command,
)

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
RESULT_FILE = Path(__file__).with_name("layer-size.json")


def install_runtime_sdk(target: Path) -> Path:
    """boto3 & co. as the Lambda runtime provides them (not part of the layer), compiled as the runtime's own copy
    is: uncompiled, every import check and cold-start measurement on them pays ~0.25 s of compiling."""
    subprocess.run(pip_install_command(LAYERS_DIR / "runtime" / "provided-by-lambda.txt", target), check=True)  # noqa: S603
    compile_for_lambda(target)
    return target


def handler_environment(module: str) -> dict[str, str]:
    """The environment the dev stack gives the function whose handler lives in `module` (placeholder ids)."""
    (function,) = [f for f, handler in config.HANDLERS.items() if handler.rsplit(".", 1)[0] == module]
    names = config.resource_names("dev", account="123456789012", region="us-east-1")
    inputs = config.EnvironmentInputs(
        identity=config.IdentityValues(user_pool_id="us-east-1_example", app_client_ids=("machine", "people")),
        training=config.TrainingValues(sagemaker_role_arn="arn:aws:iam::123456789012:role/example",
                                       training_image_uri="example", source_uri="s3://example/source.tar.gz"))
    return config.function_environment(function, stage=config.load_stage("dev"), names=names, inputs=inputs)


def import_check(python: str, paths: list[Path], module: str, *, task_root: Path | None = None) -> float:
    """Import `module` in a fresh bare interpreter (-S: no site-packages) with only `paths`, like Lambda, and
    the environment the stack gives that function (its settings are read and checked at import). `task_root`:
    the function code's folder, as Lambda's LAMBDA_TASK_ROOT (without it the X-Ray SDK, outside Lambda, builds
    botocore clients for central sampling at import, which a Lambda cold start never pays).

    Returns the import time in seconds (a cold start's import share, on this machine)."""
    script = (
        "import sys, time\n"
        f"sys.path[:0] = {[str(p) for p in paths]!r}\n"
        f"start = time.perf_counter(); import {module}; print(time.perf_counter() - start)\n"
    )
    env = {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"}
    if module.startswith("categorizer.handlers."):
        env |= handler_environment(module)
    if task_root is not None:
        env["LAMBDA_TASK_ROOT"] = str(task_root)
    # -B: Lambda's file system is read-only, so nothing compiled here may be cached for the next check.
    result = subprocess.run([python, "-S", "-B", "-c", script], capture_output=True, text=True, env=env,  # noqa: S603
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"importing {module} failed on {python}:\n{result.stderr[-4000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def handler_modules() -> list[str]:
    """The handler modules the stack points at that exist in functions/ today."""
    modules = sorted(handler.rsplit(".", 1)[0] for handler in config.HANDLERS.values())
    return [m for m in modules if (FUNCTIONS_DIR / (m.replace(".", "/") + ".py")).is_file()]


def main() -> int:
    python = find_lambda_python()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        layer = build_layer(LAYERS_DIR / "runtime" / "requirements.txt", Path(tmp) / "layer")
        build_seconds = time.perf_counter() - started
        code = build_function_code(Path(tmp) / "code")
        layer_bytes, code_bytes = directory_size(layer), directory_size(code)
        imports = {}
        if python:
            sdk = install_runtime_sdk(Path(tmp) / "sdk")
            imports = {m: import_check(python, [layer, sdk, code], m, task_root=code) for m in handler_modules()}
        largest = sorted(((directory_size(p) if p.is_dir() else p.stat().st_size, p.name)
                          for p in layer.iterdir()), reverse=True)[:8]
    result = {
        "command": "python -m infra.measure_layer",
        "python_target": LAMBDA_PYTHON,
        "bytecode_compiled_with": python,
        "host": platform.platform(),
        "layer_unzipped_bytes": layer_bytes,
        "code_unzipped_bytes": code_bytes,
        "total_unzipped_mb": round((layer_bytes + code_bytes) / 1024 / 1024, 1),
        "limit_mb": 250,
        "headroom_mb": round((LAMBDA_UNZIPPED_LIMIT - layer_bytes - code_bytes) / 1024 / 1024, 1),
        "largest_packages_mb": {name: round(size / 1024 / 1024, 1) for size, name in largest},
        "build_seconds": round(build_seconds, 1),
        "cold_import_seconds_py313": {k: round(v, 2) for k, v in imports.items()},
        "note": "The model bundle is not in the package: functions download it to /tmp (ephemeral storage).",
    }
    RESULT_FILE.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0 if layer_bytes + code_bytes < LAMBDA_UNZIPPED_LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
