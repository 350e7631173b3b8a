"""Fixtures every test package shares: a real tiny model bundle, the default model, a Lambda context.

Helpers live in tests/support; this file holds fixtures and the process environment only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.paths import ROOT, TEST_DATA
from tests.support.settings import function_environment_for_tests

# Keep boto3 off any real account in every test.
for _name, _value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                      "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                      "POWERTOOLS_TRACE_DISABLED": "true"}.items():
    os.environ.setdefault(_name, _value)
# The handler modules read their settings at import, as in Lambda; tests then hand each function its own
# dependencies through the function's one holder (or build an app from their own settings).
for _name, _value in function_environment_for_tests().items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle (real encoder, int8 export, verified manifest) trained on tests/data/tiny.csv."""
    from model_build.pipeline import BuildRequest, build
    from model_build.recipe import FAST

    bundle_dir = tmp_path_factory.mktemp("tiny") / "bundle"
    build(BuildRequest(train_files=[TEST_DATA / "tiny.csv"], bundle_dir=bundle_dir, recipe=FAST,
                       progress=False))
    return bundle_dir


@pytest.fixture(scope="session")
def classifier(tiny_bundle: Path):
    """The tiny bundle loaded once per session (one thread), for tests that only need predictions."""
    from categorizer.engine import Classifier

    return Classifier.from_path(tiny_bundle, threads=1)


@pytest.fixture(scope="session")
def default_bundle() -> Path:
    """The default BANKING77 model that `make test` builds before running pytest (`make model`).
    CATEGORIZER_ARTIFACTS (as for the CLI) points at another artifacts folder, e.g. a fresh quick build."""
    path = Path(os.environ.get("CATEGORIZER_ARTIFACTS", ROOT / "artifacts")) / "model"
    if not (path / "manifest.json").is_file():
        pytest.fail("artifacts/model is missing: run `make model` (make test does it first)")
    return path


@pytest.fixture
def lambda_context():
    from categorizer_cli.local.lambda_context import LocalLambdaContext

    return LocalLambdaContext(function_name="categorizer-test")


@pytest.fixture
def log_output():
    """The JSON lines the Powertools Logger wrote during the test."""
    from tests.support.observability import captured_logs

    with captured_logs() as lines:
        yield lines


@pytest.fixture(autouse=True)
def _reset_metrics():
    """Powertools Metrics keep state at class level: start every test from zero."""
    from categorizer.observability import metrics

    metrics.clear_metrics()
    metrics.clear_default_dimensions()
    yield
    metrics.clear_metrics()
