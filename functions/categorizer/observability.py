"""The one place the logger, metrics and tracer are created; every module imports them from here.

Logger and Tracer are Powertools'; metrics use Powertools' interface with a lean EMF writer (categorizer/emf.py).
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Tracer

from categorizer.emf import EmfMetrics

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "categorizer")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Categorizer")

logger = Logger(service=SERVICE)
metrics = EmfMetrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)
