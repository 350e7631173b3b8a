"""The one place Powertools Logger, Metrics and Tracer are created; every module imports them from here."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "categorizer")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Categorizer")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)
