"""Upload the base training data and the fixed hold-out: once, at deploy time or local provisioning.

The hold-out must stay the same for every comparison the gate makes, so an existing one is never replaced
unless asked to (and then old and new models are no longer compared on the same items).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from categorizer.adapters.model_registry_bucket import ModelBucket
from categorizer.observability import logger
from categorizer.registry.training_job import base_prefix, holdout_prefix


def upload_training_data(bucket: ModelBucket, *, training_prefix: str, base_files: Sequence[Path],
                         holdout_files: Sequence[Path], replace: bool = False) -> dict[str, list[str]]:
    """Returns the keys uploaded and the keys left as they were, per channel."""
    result: dict[str, list[str]] = {"uploaded": [], "kept": []}
    for prefix, files in ((base_prefix(training_prefix), base_files), (holdout_prefix(training_prefix), holdout_files)):
        if not files:
            raise ValueError(f"no files for {prefix}")
        present = bucket.list_keys(prefix)
        if present and not replace:
            result["kept"].extend(present)
            continue
        for path in files:
            key = f"{prefix}{path.name}"
            bucket.upload_file(path, key)
            result["uploaded"].append(key)
    logger.info("training data channels ready", extra=result)
    return result
