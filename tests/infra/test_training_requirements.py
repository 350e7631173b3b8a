"""The training job runs the versions the tests run: every package the job installs is pinned to the version
installed here, and a model builds in a virtualenv made from exactly those pins."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from infra.layer_build import TRAINING_REQUIREMENTS
from tests.support.paths import ROOT, TEST_DATA


def _pins() -> list[Requirement]:
    lines = [line.strip() for line in TRAINING_REQUIREMENTS.read_text().splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]


def test_every_package_the_job_installs_is_pinned_to_the_tested_version():
    for requirement in _pins():
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{requirement} is not pinned"
        assert metadata.version(requirement.name) == specifier.version, (
            f"the job installs {requirement}, the tests run {metadata.version(requirement.name)}")
    assert {r.name for r in _pins()} >= {"torch", "transformers", "onnx", "numpy", "scipy", "onnxruntime"}


@pytest.mark.slow
def test_a_model_builds_in_a_virtualenv_made_from_exactly_the_jobs_requirements(tmp_path: Path):
    """pip resolves the same pins here (the CPU torch wheel from this machine's wheel directory instead of
    PyTorch's index, which this network cannot reach); then the SageMaker entrypoint's own build runs."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(line for line in TRAINING_REQUIREMENTS.read_text().splitlines()
                                      if not line.startswith("--extra-index-url")))
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
                             capture_output=True, text=True, check=False, timeout=1200)
    assert install.returncode == 0, install.stderr[-3000:]
    script = (
        "import sys; sys.path[:0] = [{functions!r}, {root!r}]\n"
        "from pathlib import Path\n"
        "from model_build.pipeline import BuildRequest, build\n"
        "from model_build.recipe import FAST\n"
        "build(BuildRequest(train_files=[Path({data!r})], bundle_dir=Path({out!r}), recipe=FAST, progress=False))\n"
    ).format(functions=str(ROOT / "functions"), root=str(ROOT), data=str(TEST_DATA / "tiny.csv"),
             out=str(tmp_path / "bundle"))
    built = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=False, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "bundle" / "manifest.json").is_file()
    frozen = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
    assert "torch==2.13.0+cpu" in frozen
