"""The shared config (infra/config.py): what the CDK app and the local stack both read. No synth here."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from infra import config
from infra.config import FunctionName

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_SOURCE = (ROOT / "functions" / "categorizer" / "settings.py").read_text(encoding="utf-8")
FUNCTIONS_SOURCE = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "functions").rglob("*.py"))


def _inputs() -> config.EnvironmentInputs:
    return config.EnvironmentInputs(
        identity=config.IdentityValues(user_pool_id="us-east-1_pool", app_client_ids=("machine", "user")),
        training=config.TrainingValues(sagemaker_role_arn="arn:aws:iam::1:role/r", training_image_uri="img",
                                       source_uri="s3://b/k.tar.gz"))


def test_feedback_table_spec_is_the_api_adapters_schema():
    from categorizer.adapters.feedback_table import TABLE_SCHEMA

    names = config.resource_names("dev", account="123456789012", region="us-east-1")
    (feedback,) = [t for t in config.table_specs(names) if t.logical_name == "feedback"]
    kwargs = feedback.create_table_kwargs()
    assert kwargs.pop("TableName") == "categorizer-dev-feedback"
    assert kwargs == TABLE_SCHEMA


@pytest.mark.parametrize("function", list(FunctionName))
@pytest.mark.parametrize("stage", ["dev", "prod", "local"])
def test_every_environment_variable_is_one_the_code_reads(stage, function):
    env = config.function_environment(function, stage=config.load_stage(stage),
                                      names=config.resource_names(stage, account="1", region="us-east-1"),
                                      inputs=_inputs())
    for name in env:
        if name.startswith("POWERTOOLS_"):
            continue  # read by Powertools itself
        assert re.search(rf'["\']{name}["\']', SETTINGS_SOURCE), f"{name} is not read in settings.py"


def test_the_settings_object_reads_back_what_the_stack_sets(monkeypatch):
    from categorizer.settings import Settings

    stage = config.load_stage("prod")
    names = config.resource_names("prod", account="123456789012", region="eu-west-1")
    env = config.function_environment(FunctionName.START_TRAINING, stage=stage, names=names, inputs=_inputs())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.model_bucket == names.model_bucket == "categorizer-prod-models-123456789012-eu-west-1"
    assert settings.champion_parameter == "/categorizer/prod/champion"
    assert settings.onnx_threads == config.onnx_threads_for(stage.training_function.memory_mb)
    assert settings.training_job_prefix == "categorizer-prod"
    assert settings.training_use_spot is stage.training_use_spot
    assert settings.training_max_runtime_seconds == stage.training_max_runtime_seconds
    assert settings.min_new_feedback == stage.min_new_feedback
    assert settings.training_source_uri == "s3://b/k.tar.gz"


def test_results_work_prefix_is_the_batch_fanout_work_folder():
    from categorizer.batch.keys import WORK_FOLDER

    assert config.RESULTS_WORK_PREFIX == config.RESULTS_PREFIX + WORK_FOLDER == "results/_work/"


def test_batch_fanout_is_on_only_with_a_queue_url_and_the_settings_read_it_back(monkeypatch):
    from categorizer.settings import Settings

    stage, names = config.load_stage("dev"), config.resource_names("dev", account="1", region="us-east-1")
    without = config.function_environment(FunctionName.BATCH, stage=stage, names=names, inputs=_inputs())
    assert "BATCH_QUEUE_URL" not in without  # fan-out off, e.g. callers that do not know the queue
    url = "https://sqs.us-east-1.amazonaws.com/1/categorizer-dev-ingest"
    env = config.function_environment(FunctionName.BATCH, stage=stage, names=names,
                                      inputs=dataclasses.replace(_inputs(), batch_queue_url=url))
    assert env["BATCH_QUEUE_URL"] == url
    for function in (FunctionName.API, FunctionName.START_TRAINING, FunctionName.PROMOTE):
        assert "BATCH_QUEUE_URL" not in config.function_environment(
            function, stage=stage, names=names, inputs=dataclasses.replace(_inputs(), batch_queue_url=url))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.batch_queue_url == url
    assert (settings.fanout_bytes, settings.chunk_rows) == (stage.batch_fanout_bytes, stage.batch_chunk_rows)


def test_local_stack_environment_enables_fanout_on_the_emulated_ingest_queue(tmp_path):
    from types import SimpleNamespace

    from categorizer_cli.local.config import LocalConfig
    from categorizer_cli.local.supervisor import function_environment

    stage = config.load_stage("local")
    names = config.resource_names("local", account="123456789012", region="us-east-1")
    local = LocalConfig(directory=tmp_path, moto_port=4566, api_port=8000, token_port=8001)
    identity = SimpleNamespace(user_pool_id="us-east-1_pool", machine_client_id="m", user_client_id="u")
    env = function_environment(local, stage, names, identity)
    assert env["BATCH_QUEUE_URL"] == "http://127.0.0.1:4566/123456789012/categorizer-local-ingest"
    assert env["RESULTS_BUCKET"] == names.results_bucket and env["CHUNK_ROWS"] == str(stage.batch_chunk_rows)


def test_api_environment_names_the_identity_and_both_permission_routes():
    env = config.function_environment(FunctionName.API, stage=config.load_stage("dev"),
                                      names=config.resource_names("dev", account="1", region="us-east-1"),
                                      inputs=_inputs())
    assert env["APP_CLIENT_IDS"] == "machine,user"
    assert (env["CLASSIFY_SCOPE"], env["FEEDBACK_SCOPE"]) == ("categorizer/classify", "categorizer/feedback")
    assert (env["CLASSIFY_GROUP"], env["FEEDBACK_GROUP"]) == ("classify", "feedback")
    with pytest.raises(ValueError, match="user pool"):
        config.function_environment(FunctionName.API, stage=config.load_stage("dev"),
                                    names=config.resource_names("dev", account="1", region="us-east-1"))


@pytest.mark.parametrize(("memory_mb", "threads"), [(128, 1), (1769, 1), (2048, 1), (3008, 2), (3538, 2),
                                                    (5307, 3), (10240, 6)])
def test_onnx_threads_follow_the_vcpu_share_of_the_memory_size(memory_mb, threads):
    assert config.onnx_threads_for(memory_mb) == threads


def test_stages_differ_where_production_needs_it():
    dev, prod = config.load_stage("dev"), config.load_stage("prod")
    assert (dev.retain_data, prod.retain_data) == (False, True)
    assert dev.log_retention_days < prod.log_retention_days
    assert (dev.waf_enabled, prod.waf_enabled) == (False, True)
    assert (dev.retrain_enabled, prod.retrain_enabled) == (False, True)
    assert prod.api_throttle_rate > dev.api_throttle_rate
    assert prod.alarms.api_5xx_rate_percent < dev.alarms.api_5xx_rate_percent
    with pytest.raises(ValueError, match="unknown stage"):
        config.load_stage("staging")


def test_the_local_stage_has_its_own_names_and_an_enabled_schedule():
    local = config.load_stage("local")
    assert local.name == "local" and local.retrain_enabled
    names = config.resource_names("local", account="123456789012", region="us-east-1")
    assert names.ingest_bucket == "categorizer-local-ingest-123456789012-us-east-1"
    assert names.function(FunctionName.START_TRAINING) == "categorizer-local-start-training"


def test_queue_visibility_covers_six_function_timeouts():
    stage = config.load_stage("dev")
    spec = config.queue_spec(stage, config.resource_names("dev", account="1", region="r"))
    assert spec.visibility_timeout_seconds == 6 * stage.batch_function.timeout_seconds
    assert spec.max_receive_count >= 2


def test_bucket_names_are_valid_s3_names_for_a_real_account():
    names = config.resource_names("prod", account="123456789012", region="ap-southeast-2")
    for field in dataclasses.fields(names):
        if field.name.endswith("_bucket"):
            value = getattr(names, field.name)
            assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value), value


@pytest.mark.parametrize("metric", [m for m in config.MetricName if m is not config.MetricName.PREDICTIONS_BY_LABEL])
def test_every_alarmed_or_charted_metric_is_emitted_by_the_functions(metric):
    """Monitoring and the functions agree on metric names (a renamed metric would leave an alarm blind)."""
    assert re.search(rf'["\']{metric.value}["\']', FUNCTIONS_SOURCE), f"no function emits {metric.value}"
