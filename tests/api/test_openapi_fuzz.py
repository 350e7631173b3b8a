"""schemathesis against the app's own OpenAPI document: valid and invalid data, >= 100 examples per operation.

Runs on the ASGI app (the same one the Lambda handler wraps) with a valid machine token, so generated
requests reach the routes and the model instead of stopping at 401.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from categorizer.api import create_app
from categorizer.contract import ApiSettings
from tests.api.conftest import Cognito

# Loaded at import (schemathesis' lazy `from_fixture` does not run on pytest 9). The document does not depend
# on the settings; `fuzzed_app` hands the app this test's services (moto, the tiny model) per test.
# The classification API's operations (issue 4); the web console's routes need their own environment
# (buckets, console client) and are fuzzed with it.
CLASSIFICATION_API = r"^/v1/(health|classify|feedback|model)$"
APP = create_app(ApiSettings.from_env())
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).include(path_regex=CLASSIFICATION_API)


@pytest.fixture
def fuzzed_app(api_env: Cognito, api_services) -> Iterator[Cognito]:
    previous = APP.state.services
    APP.state.services = api_services
    yield api_env
    APP.state.services = previous


@schema.parametrize()
@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_no_server_errors_and_responses_match_the_schema(case, fuzzed_app: Cognito) -> None:
    response = case.call(headers={"Authorization": f"Bearer {fuzzed_app.machine_token()}"})

    assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"
    # Every default check but one: labels belong to the serving model, not to the document, so a
    # schema-valid feedback with a made-up label is rightly refused (422 unknown_label).
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and {"code", "message", "details"} == set(body["error"]), body
