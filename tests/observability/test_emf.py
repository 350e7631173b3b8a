"""The lean EMF writer prints what Powertools' Metrics prints for the same calls, and refuses what it refuses."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricResolution, MetricUnit
from aws_lambda_powertools.metrics.exceptions import MetricValueError
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.exceptions import (
    MetricNameError,
    MetricResolutionError,
    MetricUnitError,
)

from categorizer.contract import MetricName
from categorizer.emf import EmfMetrics
from categorizer.observability import metrics


def _documents(emit) -> list[dict[str, Any]]:
    out = io.StringIO()
    with redirect_stdout(out):
        emit()
    documents = [json.loads(line) for line in out.getvalue().splitlines()]
    for document in documents:
        assert isinstance(document["_aws"].pop("Timestamp"), int)
    return documents


def _calls(target, repeat: int) -> None:
    for _ in range(repeat):
        target.add_metric(name=MetricName.PREDICTIONS, unit=MetricUnit.Count, value=3)
        target.add_metric(name=MetricName.LOW_CONFIDENCE_PREDICTIONS, unit="Count", value=True)
        target.add_metric(name="  Latency ", unit=MetricUnit.Milliseconds, value=1.5, resolution=MetricResolution.High)
        target.add_metric(name="Payload", unit="Bytes", value=2, resolution=60)
    target.flush_metrics()


@pytest.mark.parametrize("repeat", [1, 150])  # 150: past the 100 values a document may hold per metric
def test_it_prints_the_documents_powertools_prints(repeat: int) -> None:
    expected = _documents(lambda: _calls(Metrics(namespace="Categorizer", service="categorizer"), repeat))
    printed = _documents(lambda: _calls(EmfMetrics(namespace="Categorizer", service="categorizer"), repeat))
    assert printed == expected
    assert len(printed) == (1 if repeat == 1 else 2)


def test_the_cold_start_document_is_powertools_one(lambda_context) -> None:
    expected = _documents(lambda: Metrics(namespace="Categorizer", service="categorizer").provider
                          .add_cold_start_metric(lambda_context))
    printed = _documents(lambda: EmfMetrics(namespace="Categorizer", service="categorizer")
                         .add_cold_start_metric(lambda_context))
    assert printed == expected and printed[0]["ColdStart"] == [1.0]


@pytest.mark.parametrize(("bad", "error"), [
    ({"name": " ", "unit": "Count", "value": 1}, MetricNameError),
    ({"name": "x" * 256, "unit": "Count", "value": 1}, MetricNameError),
    ({"name": "Rows", "unit": "Furlongs", "value": 1}, MetricUnitError),
    ({"name": "Rows", "unit": "Count", "value": "1"}, MetricValueError),
    ({"name": "Rows", "unit": "Count", "value": 1, "resolution": 5}, MetricResolutionError),
])
def test_it_refuses_what_powertools_refuses_with_the_same_exception(bad: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        Metrics(namespace="Categorizer", service="categorizer").add_metric(**bad)
    with pytest.raises(error):
        EmfMetrics(namespace="Categorizer", service="categorizer").add_metric(**bad)


def test_the_log_metrics_decorator_flushes_once_per_call_and_the_switch_turns_printing_off(monkeypatch) -> None:
    @metrics.log_metrics
    def handler(event: dict, context: object) -> str:
        metrics.add_metric(name=MetricName.PREDICTIONS, unit=MetricUnit.Count, value=event["n"])
        return "done"

    documents = _documents(lambda: [handler({"n": n}, None) for n in (1, 2)])
    assert [document["Predictions"] for document in documents] == [[1.0], [2.0]]
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert _documents(lambda: handler({"n": 3}, None)) == []
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED")
    # Unlike Powertools (which keeps unprinted values while disabled), nothing is left over from n=3.
    assert _documents(lambda: handler({"n": 4}, None))[0]["Predictions"] == [4.0]
