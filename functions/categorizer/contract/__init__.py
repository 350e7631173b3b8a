"""The deployment contract: what the Lambda functions, the CDK app, the local stack, the CLI and the tests
must agree on, each defined once.

- `settings`: one typed settings class per function (API, batch, start-training, promote, review-queue
  metrics), each value defaulted once; `to_env()` / `from_env()` carry them through a process environment.
- `names`: metric names, S3 key prefixes, scopes and groups, table shapes.

infra/config.py imports this package to produce function environments and tables (this package imports
nothing from infra, the CLI or model_build, so it ships in every Lambda zip).
"""

from categorizer.contract.env import EnvSettings, SettingsError, setting
from categorizer.contract.names import MetricName
from categorizer.contract.settings import (
    ApiSettings,
    BatchSettings,
    CommonSettings,
    FanOut,
    Identity,
    LearningLoop,
    ModelSource,
    PromoteSettings,
    RegistrySettings,
    ReviewQueue,
    ReviewQueueMetricsSettings,
    StartTrainingSettings,
)

__all__ = [
    "ApiSettings",
    "BatchSettings",
    "CommonSettings",
    "EnvSettings",
    "FanOut",
    "Identity",
    "LearningLoop",
    "MetricName",
    "ModelSource",
    "PromoteSettings",
    "RegistrySettings",
    "ReviewQueue",
    "ReviewQueueMetricsSettings",
    "SettingsError",
    "StartTrainingSettings",
    "setting",
]
