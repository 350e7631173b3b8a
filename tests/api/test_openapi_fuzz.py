"""schemathesis against the app's own OpenAPI document with every check, >= 100 examples per operation, in the
stateless (positive, negative, coverage) and stateful phases: the document promises exactly what the API does.

Runs on the ASGI app (the same one the Lambda handler wraps) with a valid machine token and this test's
services (moto, the tiny model), so generated requests reach the routes instead of stopping at 401.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from categorizer.api.app import create_app
from categorizer.contract import ApiSettings
from tests.api.conftest import Cognito

# Labels belong to the serving model, not to the document: a schema-valid correction to a label the model does
# not have is refused (422 unknown_label), and a reused Idempotency-Key with other content is a 409. Likewise
# the label catalogue: a schema-valid change may name a label it lacks (404), one that exists (409) or one
# whose state forbids it (409), and an example list of 10 equal texts is 409.
CONFIG = SchemathesisConfig.from_dict({
    "generation": {"max-examples": 100},
    "operations": [{
        "include-path": "/v1/feedback",
        "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422"]}},
    }, {
        "include-path-regex": "^/v1/labels",
        "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409"]}},
    }],
})
# Loaded at import (schemathesis' lazy `from_fixture` does not run on pytest 9). The document does not depend
# on the settings; `fuzzed_app` hands the app this test's services per test.
APP = create_app(ApiSettings.from_env())
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)
HYPOTHESIS = settings(max_examples=100, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.filter_too_much, HealthCheck.data_too_large])


@pytest.fixture
def fuzzed_app(api_env: Cognito, api_services) -> Iterator[Cognito]:
    previous = APP.state.services
    APP.state.services = api_services
    yield api_env
    APP.state.services = previous


def _assert_error_shape(response) -> None:
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and {"code", "message", "details"} == set(body["error"]), body


@schema.parametrize()
@HYPOTHESIS
def test_every_operation_keeps_every_promise_of_the_document(case, fuzzed_app: Cognito) -> None:
    response = case.call_and_validate(headers={"Authorization": f"Bearer {fuzzed_app.machine_token()}"})
    _assert_error_shape(response)


@pytest.mark.slow
def test_sequences_of_calls_keep_the_document_s_promises(fuzzed_app: Cognito) -> None:
    """The stateful phase: chains of calls (links inferred from the document), every check on each answer."""
    machine = schema.as_state_machine()
    calls: list[str] = []

    class Calls(machine):  # type: ignore[misc,valid-type]
        def get_call_kwargs(self, case):
            return {"headers": {"Authorization": f"Bearer {fuzzed_app.machine_token()}"}}

        def after_call(self, response, case):
            calls.append(f"{case.method} {case.path}")
            _assert_error_shape(response)

    Calls.run(settings=settings(max_examples=100, deadline=None, stateful_step_count=6,
                                suppress_health_check=list(HealthCheck)))
    # The links schemathesis infers (an upload's id into GET /v1/files/{upload_id}, ...) were followed.
    assert len(calls) >= 100 and len(set(calls)) >= 3, sorted(set(calls))
