"""Building the Lambda dependency layer, the function code and the SageMaker source archive, without Docker
(no CDK import).

The layer is built with pip's cross-platform install (manylinux wheels for the Lambda runtime's CPython,
`--no-deps` over an explicit full list in layers/<name>/requirements.txt), so it never needs Docker nor a
matching host Python. Layer and function code both carry bytecode compiled by the Lambda runtime's Python when
this machine has it: Lambda's file system is read-only, so without it every cold start compiles every module
it imports, and never keeps the result.
"""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS_DIR = ROOT / "layers"
FUNCTIONS_DIR = ROOT / "functions"
MODEL_BUILD_DIR = ROOT / "model_build"
TRAINING_REQUIREMENTS = Path(__file__).parent / "assets" / "training-requirements.txt"

LAMBDA_PYTHON = "3.13"
# Lambda x86_64 runs Amazon Linux 2023 (glibc 2.34): both manylinux tags are loadable there.
WHEEL_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
# Never needed at run time, and large: test suites and foreign bytecode.
PRUNED_DIRS = ("tests", "__pycache__")
# What the function code asset leaves out of functions/ (the host's bytecode and tool caches).
CODE_EXCLUDED_NAMES = ("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")


def pip_install_command(requirements: Path, target: Path, *, python: str = sys.executable) -> list[str]:
    platforms = [arg for tag in WHEEL_PLATFORMS for arg in ("--platform", tag)]
    return [
        python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        *platforms, "--implementation", "cp", "--python-version", LAMBDA_PYTHON, "--only-binary=:all:",
        "--no-deps", "-r", str(requirements), "--target", str(target),
    ]


def find_lambda_python() -> str | None:
    """A CPython of the Lambda runtime's version on this machine, used to precompile bytecode if present."""
    candidates = [shutil.which(f"python{LAMBDA_PYTHON}"),
                  *sorted(str(p) for p in Path.home().glob(f".pyenv/versions/{LAMBDA_PYTHON}*/bin/python3"))]
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],  # noqa: S603
                               capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == LAMBDA_PYTHON:
            return candidate
    return None


def build_layer(requirements: Path, output_dir: Path) -> Path:
    """Install the layer into `output_dir/python` (Lambda's layer layout) and return that directory."""
    site = output_dir / "python"
    if site.exists():
        shutil.rmtree(site)
    subprocess.run(pip_install_command(requirements, site), check=True)  # noqa: S603
    for name in PRUNED_DIRS:
        for path in sorted(site.rglob(name), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
    compile_for_lambda(site)
    return site


def build_function_code(output_dir: Path, *, source: Path = FUNCTIONS_DIR) -> Path:
    """The function code asset: functions/ as it is in the repository, plus bytecode for the Lambda runtime.
    Measured: the API function's imports, 1.135 -> 1.074 s with it (bench/results/*-function-bytecode.md).
    `source`: another functions/ folder (a benchmark's earlier commit)."""
    shutil.copytree(source, output_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(*CODE_EXCLUDED_NAMES))
    compile_for_lambda(output_dir)
    return output_dir


def compile_for_lambda(directory: Path) -> str | None:
    """Compile every module under `directory` with the Lambda runtime's Python, if this machine has one (else
    nothing: the code still runs, it only compiles at each cold start). Returns the interpreter used."""
    lambda_python = find_lambda_python()
    if lambda_python:
        # unchecked-hash: the asset zip resets file times, which would invalidate timestamp-based .pyc.
        subprocess.run([lambda_python, "-m", "compileall", "-q", "-j", "0",  # noqa: S603
                        "--invalidation-mode", "unchecked-hash", str(directory)], check=True, capture_output=True)
    return lambda_python


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def write_training_source(archive: Path) -> Path:
    """sourcedir.tar.gz for SageMaker script mode: model_build/, categorizer/ and requirements.txt at the root.

    The framework container installs requirements.txt, then runs model_build/sagemaker_entry.py, which puts
    the archive root on sys.path so both packages import.
    """
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if "__pycache__" in parts or info.name.endswith((".pyc", ".pyo")):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0  # deterministic archive for a stable asset hash
        return info

    archive.parent.mkdir(parents=True, exist_ok=True)
    # gzip without a file name or time in its header: the same sources always give the same bytes.
    with archive.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        tar.add(MODEL_BUILD_DIR, arcname="model_build", filter=keep)
        tar.add(FUNCTIONS_DIR / "categorizer", arcname="categorizer", filter=keep)
        data = TRAINING_REQUIREMENTS.read_bytes()
        info = tarfile.TarInfo("requirements.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive
