"""The real dependency layer, built the way `cdk synth` builds it (pip cross-install, no Docker), checked on
the Lambda runtime's Python (3.13): it imports every handler, runs the engine, and fits Lambda's size limit."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from infra import config
from infra.layer_build import (
    FUNCTIONS_DIR,
    LAMBDA_PYTHON,
    LAYERS_DIR,
    build_layer,
    directory_size,
    find_lambda_python,
    write_training_source,
)
from infra.measure_layer import LAMBDA_UNZIPPED_LIMIT, code_size, import_check, install_runtime_sdk

pytestmark = pytest.mark.slow
REQUIREMENTS = LAYERS_DIR / "runtime" / "requirements.txt"


@pytest.fixture(scope="module")
def lambda_python() -> str:
    python = find_lambda_python()
    if python is None:
        pytest.fail(f"no python{LAMBDA_PYTHON} on this machine: the layer cannot be checked for the Lambda runtime")
    return python


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_layer(REQUIREMENTS, tmp_path_factory.mktemp("layer"))


@pytest.fixture(scope="module")
def runtime_paths(layer: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """sys.path of a function on Lambda: the layer (/opt/python), the runtime's boto3, the function code."""
    return [layer, install_runtime_sdk(tmp_path_factory.mktemp("sdk")), FUNCTIONS_DIR]


def _pinned_names(requirements: Path) -> set[str]:
    names = set()
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(line.split("==")[0].lower().replace("-", "_"))
    return names


def test_layer_holds_every_pinned_package_for_cp313_manylinux_and_no_sdk(layer):
    installed = {p.name.split("-")[0].lower() for p in layer.glob("*.dist-info")}
    assert _pinned_names(REQUIREMENTS) == installed
    native = list(layer.glob("onnxruntime/capi/onnxruntime_pybind11_state.*.so"))
    assert [p.name for p in native] == ["onnxruntime_pybind11_state.cpython-313-x86_64-linux-gnu.so"]
    assert not (layer / "boto3").exists() and not (layer / "botocore").exists()  # the runtime provides them
    assert not list(layer.rglob("tests"))


@pytest.mark.parametrize("handler", sorted(set(config.HANDLERS.values())))
def test_every_handler_imports_on_the_lambda_python_with_only_the_layer(lambda_python, runtime_paths, handler):
    module = handler.rsplit(".", 1)[0]
    assert (FUNCTIONS_DIR / (module.replace(".", "/") + ".py")).is_file(), f"{module} does not exist yet"
    seconds = import_check(lambda_python, runtime_paths, module)
    assert seconds > 0


def test_engine_classifies_on_the_lambda_python_with_the_layers_native_wheels(lambda_python, runtime_paths,
                                                                              tiny_bundle):
    script = (
        "import json, sys\n"
        f"sys.path[:0] = {[str(p) for p in runtime_paths]!r}\n"
        "from categorizer.engine import Classifier\n"
        f"classifier = Classifier.from_path({str(tiny_bundle)!r}, threads=1)\n"
        "results = classifier.classify(['my card has not arrived yet', ''], top_k=2)\n"
        "print(json.dumps([getattr(r, 'label', None) or getattr(r, 'code', None) for r in results]))\n"
    )
    result = subprocess.run([lambda_python, "-S", "-c", script], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    label, empty = json.loads(result.stdout.strip().splitlines()[-1])
    assert label in {"card_arrival", "exchange_rate", "lost_or_stolen_card"}
    assert empty and empty not in {"card_arrival", "exchange_rate", "lost_or_stolen_card"}  # an error code


def test_layer_plus_code_fit_lambdas_unzipped_limit(layer):
    total = directory_size(layer) + code_size()
    assert total < LAMBDA_UNZIPPED_LIMIT, f"{total / 2**20:.1f} MB exceeds 250 MB"
    # The layer is not silently empty either: onnxruntime alone is tens of MB.
    assert directory_size(layer) > 50 * 2**20


def test_training_source_archive_runs_its_entrypoint_from_the_archive_root(tmp_path):
    archive = write_training_source(tmp_path / "sourcedir.tar.gz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        assert all(member.mtime == 0 for member in tar.getmembers())  # reproducible asset hash
        tar.extractall(tmp_path / "code", filter="data")
    assert {"requirements.txt", "model_build/sagemaker_entry.py", "categorizer/engine/classifier.py"} <= names
    assert not any("__pycache__" in name for name in names)
    # SageMaker runs `python model_build/sagemaker_entry.py` in /opt/ml/code (after installing requirements.txt):
    # the entrypoint must import its packages from the archive, not from wherever this repo is installed.
    script = (
        "import runpy, sys\n"
        "sys.argv = ['model_build/sagemaker_entry.py', '--help']\n"
        "try:\n"
        "    runpy.run_path('model_build/sagemaker_entry.py', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    print('EXIT', exit.code, sys.modules['model_build'].__file__, sys.modules['categorizer'].__file__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path / "code", capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "--feedback" in result.stdout
    exit_line = result.stdout.strip().splitlines()[-1].split()
    code_dir = str((tmp_path / "code").resolve())
    assert exit_line[:2] == ["EXIT", "0"]
    assert exit_line[2].startswith(code_dir) and exit_line[3].startswith(code_dir), exit_line


def test_the_archive_is_byte_identical_when_rebuilt(tmp_path):
    first = write_training_source(tmp_path / "a.tar.gz").read_bytes()
    second = write_training_source(tmp_path / "b.tar.gz").read_bytes()
    assert first == second
