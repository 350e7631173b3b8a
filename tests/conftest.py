"""Shared fixtures: a real tiny model bundle, the default model, a fake Lambda context, sample events."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
TEST_DATA = Path(__file__).parent / "data"
BANKING77 = Path(os.environ.get("CATEGORIZER_DATA", ROOT.parent / "shared" / "data" / "banking77"))
TINY_LABELS = ("card_arrival", "exchange_rate", "lost_or_stolen_card")

# Keep boto3 off any real account in every test.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Categorizer")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


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
def default_bundle() -> Path:
    """The default BANKING77 model that `make test` builds before running pytest (`make model`)."""
    path = ROOT / "artifacts" / "model"
    if not (path / "manifest.json").is_file():
        pytest.fail("artifacts/model is missing: run `make model` (make test does it first)")
    return path


@dataclass
class FakeLambdaContext:
    function_name: str = "categorizer-test"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:categorizer-test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    log_group_name: str = "/aws/lambda/categorizer-test"
    log_stream_name: str = "2026/11/23/[$LATEST]abcdef"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(autouse=True)
def _reset_metrics():
    """Powertools Metrics keep state at class level: start every test from zero."""
    from categorizer.observability import metrics

    metrics.clear_metrics()
    metrics.clear_default_dimensions()
    yield
    metrics.clear_metrics()
