"""The direct path for POST /v1/classify (api/direct.py) answers exactly what the app answers.

The same generated requests (both API Gateway event shapes; valid, invalid and odd bodies, content types,
tokens, paths and methods) go to the Lambda handler with the direct path and to the one that sends everything
through the app; status, headers and body must be equal (prediction ids are random per answer, so they are
compared by shape). A second test proves the direct path is taken at all: with an app that cannot answer,
well-formed requests are still answered, and only they are.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st

from categorizer.api.app import create_app
from categorizer.api.lambda_adapter import lambda_handler, lambda_handler_for
from categorizer.api.services import ApiServices
from categorizer.contract import ApiSettings
from categorizer.model_store import ModelUnavailableError
from tests.api.conftest import FEEDBACK_SCOPE, Api, ApiResponse, Cognito

PREDICTION_ID = re.compile(rb'"prediction_id":"[0-9a-f]{32}"')
TEXTS = ["My card has not arrived yet", "What exchange rate do you use?", " ", "", "\u00e9t\u00e9 \u2603",
         "x" * 10_001, "card " * 200]

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=6)
requests = st.fixed_dictionaries(
    {},
    optional={"texts": st.lists(st.sampled_from(TEXTS), min_size=0, max_size=4) | json_values,
              "text": st.sampled_from(TEXTS) | json_values,
              "top_k": st.sampled_from([0, 1, 3, 20, 21, 2.0, 2.5, "3", True, None]),
              "explain": st.sampled_from([True, False, "true", 1, None]),
              "extra": json_values})
valid_requests = st.one_of(
    st.fixed_dictionaries({"texts": st.lists(st.sampled_from(TEXTS[:2] + TEXTS[4:5] + TEXTS[6:]), min_size=1,
                                             max_size=3)},
                          optional={"top_k": st.integers(1, 20), "explain": st.booleans()}),
    st.fixed_dictionaries({"text": st.sampled_from(TEXTS[:2])}, optional={"top_k": st.sampled_from([1, 5.0])}))
bodies = (valid_requests.map(json.dumps) | valid_requests.map(json.dumps) | requests.map(json.dumps)
          | json_values.map(json.dumps)
          | st.sampled_from(["", "{", "null", "[]", '{"text": "a"}garbage', "\ufeff{}", "[" * 5_000 + "]" * 5_000]))
TOKENS = ("machine", "machine", "machine", "feedback-only", "garbage", None, "basic", "lowercase-bearer",
          "two-spaces")
CONTENT_TYPES = (None, "application/json", "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                 "text/plain", "application/vnd.api+json", "application/json; charset=latin-1")


def _authorization(kind: str | None, cognito: Cognito) -> str | None:
    return {"machine": f"Bearer {cognito.machine_token()}",
            "feedback-only": f"Bearer {cognito.machine_token(scopes=(FEEDBACK_SCOPE,))}",
            "garbage": "Bearer not-a-jwt",
            "basic": "Basic YWxpY2U6cGFzcw==",
            "lowercase-bearer": f"bearer {cognito.machine_token()}",
            "two-spaces": f"Bearer  {cognito.machine_token()}",
            None: None}[kind]


def _comparable(response: ApiResponse) -> tuple[int, dict[str, str], bytes]:
    return response.status, response.headers, PREDICTION_ID.sub(b'"prediction_id":"<id>"', response.body)


def _handlers(settings: ApiSettings, services: ApiServices, lambda_context) -> tuple[Api, Api, FastAPI]:
    """(the handler Lambda runs, one that sends every request through the app, the app), on `services`."""
    app = create_app(settings, services=services)
    return (Api(lambda_handler_for(app), lambda_context, "rest_v1"),
            Api(lambda_handler_for(app, direct_classify=False), lambda_context, "rest_v1"), app)


@pytest.fixture
def handlers(api_config, api_services, lambda_context) -> tuple[Api, Api, FastAPI]:
    return _handlers(api_config, api_services, lambda_context)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(kind=st.sampled_from(["rest_v1", "http_v2"]), body=bodies, token=st.sampled_from(TOKENS),
       content_type=st.sampled_from(CONTENT_TYPES),
       route=st.sampled_from([("POST", "/v1/classify")] * 6 + [("POST", "/v1/classify/"), ("GET", "/v1/classify"),
                                                                 ("PUT", "/v1/classify"), ("POST", "/v1/feedback")]),
       declared_length=st.sampled_from([None] * 6 + ["10", "99999999", "abc"]))
def test_the_direct_path_answers_every_request_as_the_app_does(
        handlers: tuple[Api, Api, FastAPI], api_env: Cognito, kind: str, body: str, token: str | None,
        content_type: str | None, route: tuple[str, str], declared_length: str | None) -> None:
    direct, through_app, _ = handlers
    direct.kind = through_app.kind = kind
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if (authorization := _authorization(token, api_env)) is not None:
        headers["Authorization"] = authorization
    method, path = route
    event = direct.event("classify", body=body, method=method, path=path, headers=headers)
    if content_type is None:
        event["headers"] = {k: v for k, v in event["headers"].items() if k.lower() != "content-type"}
    if declared_length is not None:
        event["headers"] = {**{k: v for k, v in event["headers"].items() if k.lower() != "content-length"},
                            "Content-Length": declared_length}
    if kind == "rest_v1":
        event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}

    answer = _comparable(direct.invoke(copy.deepcopy(event)))
    hypothesis_event(f"status {answer[0]}")  # --hypothesis-show-statistics: how often each answer was compared
    assert answer == _comparable(through_app.invoke(copy.deepcopy(event)))


class _CountingApp:
    """Stands in for the app's middleware stack: counts the requests that reach it and answers 599."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_well_formed_classify_requests_never_reach_the_app_and_others_always_do(
        handlers: tuple[Api, Api, FastAPI], api_env: Cognito, monkeypatch: pytest.MonkeyPatch) -> None:
    direct, _, app = handlers
    app_stack = _CountingApp()
    monkeypatch.setattr(app, "middleware_stack", app_stack)  # what Starlette runs for every request it gets
    token = api_env.machine_token()

    answered = direct.call("classify", token=token, body={"texts": ["My card has not arrived yet"], "top_k": 2})
    assert answered.status == 200 and len(answered.json["predictions"][0]["top_k"]) == 2
    refused = direct.call("classify", token=api_env.machine_token(scopes=(FEEDBACK_SCOPE,)), body={"text": "hi"})
    assert refused.status == 403 and refused.json["error"]["code"] == "forbidden"
    assert app_stack.calls == 0

    for kwargs in ({"token": token, "body": {"text": " "}},  # schema: the app's validation_error
                   {"token": None, "body": {"text": "hi"}},  # no token: the app's 401
                   {"token": token, "body": "{"},  # not JSON: the app's 400
                   {"token": token, "body": {"text": "hi"}, "method": "GET"}):
        assert direct.call("classify", **kwargs).status == 599
    assert app_stack.calls == 4


class _FailingModels:
    """A model store whose `get` raises `error` (what a failed first load or a bug inside the engine does)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get(self):
        raise self.error


@pytest.mark.parametrize("error", [ModelUnavailableError("no model could be loaded: bucket unreachable"),
                                   RuntimeError("a bug")], ids=["model unavailable (503)", "unexpected (500)"])
def test_failures_after_the_request_was_accepted_are_answered_as_the_app_answers_them(
        api_config, api_services, lambda_context, api_env: Cognito, error: Exception) -> None:
    failing = dataclasses.replace(api_services, models=_FailingModels(error))
    direct, through_app, _ = _handlers(api_config, failing, lambda_context)
    event = direct.event("classify", token=api_env.machine_token(), body={"text": "My card has not arrived yet"})

    answer = direct.invoke(copy.deepcopy(event))
    assert answer.status == (503 if isinstance(error, ModelUnavailableError) else 500)
    assert "a bug" not in answer.body.decode()
    assert _comparable(answer) == _comparable(through_app.invoke(copy.deepcopy(event)))


def test_the_app_is_built_by_the_first_request_the_direct_path_does_not_answer_and_only_once(
        api_config, api_services, lambda_context, api_env: Cognito) -> None:
    built: list[FastAPI] = []

    def build_app() -> FastAPI:
        built.append(create_app(api_config, services=api_services))
        return built[-1]

    api = Api(lambda_handler(api_services, app=build_app), lambda_context, "rest_v1")
    token = api_env.machine_token()

    assert api.call("classify", token=token, body={"text": "My card has not arrived yet"}).status == 200
    assert api.call("classify", token=token, body={"texts": ["hi"], "top_k": 2}).status == 200
    assert not built
    assert api.call("classify", token=None, body={"text": "hi"}).status == 401  # no token: the app answers
    assert len(built) == 1
    assert api.call("health").status == 200
    assert api.call("classify", token=token, body={"text": " "}).status == 422
    assert len(built) == 1


def test_the_lambda_handler_module_imports_neither_fastapi_nor_starlette() -> None:
    """What a cold start imports before its first request (the environment is the tests' function settings)."""
    probe = ("import sys, categorizer.handlers.api; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette'}))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env=os.environ | {"POWERTOOLS_TRACE_DISABLED": "true"})
    assert result.stdout.strip() == "[]", result.stderr[-2000:]
