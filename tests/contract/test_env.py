"""The settings codec: what infra writes is what a function reads back, and a bad environment is refused at
cold start with every problem named at once."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from categorizer.contract import EnvSettings, LearningLoop, ModelSource, SettingsError, setting


@dataclass(frozen=True, kw_only=True)
class Inner(EnvSettings):
    limit: int = setting("INNER_LIMIT", 5)


@dataclass(frozen=True, kw_only=True)
class Sample(EnvSettings):
    name: str = setting("SAMPLE_NAME")
    ratio: float = setting("SAMPLE_RATIO", 0.5)
    enabled: bool = setting("SAMPLE_ENABLED", True)
    ids: tuple[str, ...] = setting("SAMPLE_IDS", ())
    optional: int | None = setting("SAMPLE_OPTIONAL", None)
    region: str = setting("SAMPLE_REGION", "us-east-1", aliases=("SAMPLE_REGION_FALLBACK",), runtime=True)
    inner: Inner = field(default_factory=Inner)


_name = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=","), min_size=1)


@given(name=_name, ratio=st.floats(allow_nan=False, allow_infinity=False), enabled=st.booleans(),
       ids=st.lists(_name, max_size=4).map(tuple), optional=st.none() | st.integers(), limit=st.integers())
def test_what_to_env_writes_from_env_reads_back_equal(name, ratio, enabled, ids, optional, limit):
    settings = Sample(name=name, ratio=ratio, enabled=enabled, ids=ids, optional=optional, inner=Inner(limit=limit))
    assert Sample.from_env(settings.to_env()) == settings


def test_defaults_apply_and_runtime_values_are_read_but_never_written():
    settings = Sample.from_env({"SAMPLE_NAME": "x", "SAMPLE_REGION_FALLBACK": "eu-west-1"})
    assert (settings.ratio, settings.enabled, settings.ids, settings.optional, settings.inner.limit) == (
        0.5, True, (), None, 5)
    assert settings.region == "eu-west-1"  # the alias, as AWS_DEFAULT_REGION stands in for AWS_REGION
    assert "SAMPLE_REGION" not in settings.to_env()  # Lambda sets AWS_REGION itself and refuses it in config


def test_every_problem_is_named_in_one_message():
    with pytest.raises(SettingsError) as caught:
        Sample.from_env({"SAMPLE_RATIO": "half", "SAMPLE_ENABLED": "maybe", "INNER_LIMIT": "many"})
    message = str(caught.value)
    assert "SAMPLE_NAME is not set" in message
    assert "SAMPLE_RATIO='half' is malformed" in message
    assert "SAMPLE_ENABLED='maybe' is malformed" in message
    assert "INNER_LIMIT='many' is malformed" in message


def test_checks_across_variables_are_settings_errors_too():
    with pytest.raises(SettingsError, match="no model configured"):
        ModelSource.from_env({})
    with pytest.raises(SettingsError, match="TRAINING_MAX_WAIT_SECONDS must be at least"):
        LearningLoop.from_env({"TRAINING_MAX_RUNTIME_SECONDS": "7200", "TRAINING_MAX_WAIT_SECONDS": "3600"})
    assert LearningLoop.from_env({"TRAINING_USE_SPOT": "false", "TRAINING_MAX_RUNTIME_SECONDS": "7200",
                                  "TRAINING_MAX_WAIT_SECONDS": "3600"}).training_use_spot is False
