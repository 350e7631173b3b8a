"""The shared config (infra/config.py): what the CDK app and the local stack both read. No synth here."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from categorizer.contract import (
    ApiSettings,
    BatchSettings,
    PromoteSettings,
    ReviewQueueMetricsSettings,
    SettingsError,
    StartTrainingSettings,
)
from infra import config
from infra.config import FunctionName

SETTINGS_CLASSES = {FunctionName.API: ApiSettings, FunctionName.BATCH: BatchSettings,
                    FunctionName.START_TRAINING: StartTrainingSettings, FunctionName.PROMOTE: PromoteSettings,
                    FunctionName.REVIEW_QUEUE_METRICS: ReviewQueueMetricsSettings}
# Per function: a variable it cannot start without (with any alternative it has), and a number it parses.
REQUIRED_AND_NUMERIC = {**dict.fromkeys(SETTINGS_CLASSES, ({"CHAMPION_PARAMETER", "MODEL_DIR"}, "ONNX_THREADS")),
                        FunctionName.REVIEW_QUEUE_METRICS: ({"REVIEW_TABLE"}, "REVIEW_DEPTH_MAX_PAGES")}


def _inputs() -> config.EnvironmentInputs:
    return config.EnvironmentInputs(
        identity=config.IdentityValues(user_pool_id="us-east-1_pool", app_client_ids=("machine", "user")),
        training=config.TrainingValues(sagemaker_role_arn="arn:aws:iam::1:role/r", training_image_uri="img",
                                       source_uri="s3://b/k.tar.gz"))


def test_the_feedback_table_is_created_with_the_adapters_key():
    from categorizer.adapters.feedback_table import PARTITION_KEY

    names = config.resource_names("dev", account="123456789012", region="us-east-1")
    (feedback,) = [t for t in config.table_specs(names) if t.logical_name == "feedback"]
    kwargs = feedback.create_table_kwargs()
    assert kwargs["TableName"] == "categorizer-dev-feedback"
    assert kwargs["KeySchema"] == [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}]
    assert "GlobalSecondaryIndexes" not in kwargs  # nothing queries by another key


@pytest.mark.parametrize("function", list(FunctionName))
@pytest.mark.parametrize("stage", ["dev", "prod", "local"])
def test_each_function_reads_back_exactly_what_the_stack_sets(stage, function):
    """Every variable infra writes is one the function's settings class reads, and it reads them back equal."""
    settings = config.function_settings(function, stage=config.load_stage(stage),
                                        names=config.resource_names(stage, account="1", region="us-east-1"),
                                        inputs=_inputs())
    env = settings.to_env()
    assert isinstance(settings, SETTINGS_CLASSES[function])
    assert set(env) <= set(SETTINGS_CLASSES[function].variables())
    assert SETTINGS_CLASSES[function].from_env({**env, "AWS_REGION": "us-east-1"}) == settings


@pytest.mark.parametrize("function", list(FunctionName))
def test_a_missing_or_malformed_variable_stops_the_function_naming_it(function):
    env = config.function_environment(function, stage=config.load_stage("dev"),
                                      names=config.resource_names("dev", account="1", region="us-east-1"),
                                      inputs=_inputs())
    settings_class = SETTINGS_CLASSES[function]
    required, numeric = REQUIRED_AND_NUMERIC[function]
    with pytest.raises(SettingsError, match=sorted(required)[0]):
        settings_class.from_env({k: v for k, v in env.items() if k not in required})
    with pytest.raises(SettingsError, match=rf"{numeric}='two' is malformed"):
        settings_class.from_env({**env, numeric: "two"})


def test_the_handler_module_fails_at_import_with_one_clear_message():
    """Lambda reports an init error; its log names the variable (no traceback from deep inside a request)."""
    env = {k: v for k, v in os.environ.items() if k != "RESULTS_BUCKET"}
    result = subprocess.run([sys.executable, "-c", "import categorizer.handlers.batch"], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "SettingsError: the batch function cannot start: RESULTS_BUCKET is not set" in result.stderr


def test_the_settings_object_reads_back_what_the_stack_sets():
    stage = config.load_stage("prod")
    names = config.resource_names("prod", account="123456789012", region="eu-west-1")
    env = config.function_environment(FunctionName.START_TRAINING, stage=stage, names=names, inputs=_inputs())
    settings = StartTrainingSettings.from_env(env)
    assert settings.model_bucket == names.model_bucket == "categorizer-prod-models-123456789012-eu-west-1"
    assert settings.champion_parameter == "/categorizer/prod/champion"
    assert settings.onnx_threads == config.onnx_threads_for(stage.training_function.memory_mb)
    assert settings.training_job_prefix == "categorizer-prod"
    assert settings.learning == stage.learning
    assert settings.training_source_uri == "s3://b/k.tar.gz"


def test_one_default_per_value_the_stage_and_the_function_agree():
    """The promotion tolerance (once 0.0 in the function and 0.002 in the stage) has one definition."""
    from categorizer.contract import LearningLoop

    for name in ("dev", "prod"):
        assert config.load_stage(name).learning == LearningLoop()
    assert LearningLoop().promotion_macro_f1_tolerance == 0.002


def test_results_work_prefix_is_the_batch_fanout_work_folder():
    from categorizer.batch import keys

    assert keys.WORK_FOLDER == "_work/"
    assert config.RESULTS_WORK_PREFIX == config.RESULTS_PREFIX + keys.WORK_FOLDER == "results/_work/"


def test_batch_fanout_is_on_only_with_a_queue_url_and_the_settings_read_it_back():
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
    settings = BatchSettings.from_env(env)
    assert settings.batch_queue_url == url
    assert settings.fanout == stage.fanout


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
    assert env["RESULTS_BUCKET"] == names.results_bucket and env["CHUNK_ROWS"] == str(stage.fanout.chunk_rows)


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


def test_every_metric_is_emitted_through_a_handler_table_or_the_api():
    """Monitoring and the functions share MetricName; every name is emitted somewhere (no dead chart)."""
    from categorizer.handlers import batch, promote, review_queue_metrics, start_training

    emitted = {*(name for names in review_queue_metrics.METRICS_BY_STATUS.values() for name in names),
               *filter(None, batch.METRIC_BY_STATUS.values()), *filter(None, promote.METRIC_BY_STATUS.values()),
               *filter(None, start_training.METRIC_BY_STATUS.values()), config.MetricName.ROWS_CLASSIFIED,
               config.MetricName.ROWS_REJECTED, config.MetricName.OUT_OF_SCOPE_PREDICTIONS,
               config.MetricName.FILE_TRANSIENT_FAILURES, config.MetricName.CONSECUTIVE_REJECTIONS,
               config.MetricName.REVIEW_ITEMS_QUEUED, config.MetricName.REVIEW_QUEUE_WRITE_FAILURES}
    functions = Path(__file__).resolve().parents[2] / "functions/categorizer"
    source = "".join((functions / path).read_text() for path in ("api/logic.py", "review/decisions.py"))
    emitted |= {m for m in config.MetricName if f"MetricName.{m.name}" in source}
    assert emitted == set(config.MetricName)


@pytest.mark.parametrize("stage", ["dev", "prod", "local"])
def test_review_queue_metrics_measure_the_stage_queue_often_and_load_no_model(stage):
    from categorizer_cli.local.pump import rate_seconds

    settings = config.load_stage(stage)
    names = config.resource_names(stage, account="1", region="us-east-1")
    env = config.function_environment(FunctionName.REVIEW_QUEUE_METRICS, stage=settings, names=names)
    assert env["REVIEW_TABLE"] == names.review_table
    assert not {k for k in env if k.startswith(("MODEL_", "ONNX_", "CHAMPION_"))}
    # A rate the local stack can fire too, well inside the alarm's window.
    assert 60 <= rate_seconds(settings.review_metrics_schedule) <= 900
    assert settings.review_metrics_schedule == "rate(5 minutes)"
    assert settings.alarms.review_oldest_item_alarm_hours == 72
