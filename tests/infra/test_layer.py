"""The real dependency layer and function code, built the way `cdk synth` builds them (pip cross-install, no
Docker), checked on the Lambda runtime's Python (3.13): they import every handler from bytecode, run the engine,
and fit Lambda's size limit."""

from __future__ import annotations

import json
import shutil
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
    build_function_code,
    build_layer,
    directory_size,
    find_lambda_python,
    write_training_source,
)
from infra.measure_layer import LAMBDA_UNZIPPED_LIMIT, import_check, install_runtime_sdk

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
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_function_code(tmp_path_factory.mktemp("code") / "task")


@pytest.fixture(scope="module")
def runtime_paths(layer: Path, code: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """sys.path of a function on Lambda: the layer (/opt/python), the runtime's boto3, the function code."""
    return [layer, install_runtime_sdk(tmp_path_factory.mktemp("sdk")), code]


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


def _pyc_flags(path: Path) -> int:
    """PEP 552: the second 4-byte word of a .pyc; 0b01 = hash-based, the source never checked."""
    return int.from_bytes(path.read_bytes()[4:8], "little")


def test_function_code_carries_unchecked_bytecode_for_the_lambda_python_and_nothing_of_the_host(
        lambda_python, code, runtime_paths, tmp_path):
    sources = sorted(p.relative_to(code) for p in code.rglob("*.py"))
    assert sources == sorted(p.relative_to(FUNCTIONS_DIR) for p in FUNCTIONS_DIR.rglob("*.py")
                             if "__pycache__" not in p.parts and ".pytest_cache" not in p.parts)
    tag = "cpython-" + LAMBDA_PYTHON.replace(".", "")
    for source in sources:
        compiled = code / source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert compiled.is_file(), f"no bytecode for {source}"
        # The asset zip resets file times: timestamp-checked bytecode would be recompiled at every cold start.
        assert _pyc_flags(compiled) == 0b01, source
    foreign = [p for p in code.rglob("*.pyc") if f".{tag}." not in p.name]
    assert not foreign and not list(code.rglob(".pytest_cache"))
    # Lambda runs the bytecode without reading the source: a source broken after the build still imports.
    deployed = shutil.copytree(code, tmp_path / "task")
    with (deployed / "categorizer" / "handlers" / "api.py").open("a", encoding="utf-8") as source:
        source.write("\nraise RuntimeError('the source was compiled at import')\n")
    paths = [deployed if path == code else path for path in runtime_paths]
    assert import_check(lambda_python, paths, "categorizer.handlers.api") > 0


def test_layer_plus_code_fit_lambdas_unzipped_limit(layer, code):
    total = directory_size(layer) + directory_size(code)
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
