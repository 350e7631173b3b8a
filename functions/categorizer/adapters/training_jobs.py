"""SageMaker training jobs: create one (idempotently, by name) and look one up."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError


class TrainingJobs:
    def __init__(self, client: Any | None = None) -> None:
        self.client = client or boto3.client("sagemaker")

    def exists(self, name: str) -> bool:
        try:
            self.client.describe_training_job(TrainingJobName=name)
        except ClientError as exc:
            # SageMaker answers ValidationException "Requested resource not found" for an unknown job.
            if exc.response.get("Error", {}).get("Code") in {"ValidationException", "ResourceNotFound"}:
                return False
            raise
        return True

    def create(self, request: dict[str, Any]) -> bool:
        """Start the job. False when a job of that name exists already (a retry, or a race with one)."""
        try:
            self.client.create_training_job(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceInUse":
                return False
            raise
        return True

    def describe(self, name: str) -> dict[str, Any]:
        return self.client.describe_training_job(TrainingJobName=name)
