"""The plain functions behind the routes, and the one exception -> status mapping."""

from __future__ import annotations

import json

import pytest

from categorizer.adapters.feedback_table import FeedbackStoreError
from categorizer.api import logic
from categorizer.api.auth import AuthenticationError, AuthUnavailableError, PermissionDeniedError
from categorizer.api.error_table import ERROR_STATUS, BodyTooLargeError
from categorizer.api.errors import error_response
from categorizer.api.paths import stage_prefix
from categorizer.model_store import ModelUnavailableError


def test_texts_the_engine_refuses_fail_the_request_naming_each_index(serving_store) -> None:
    with pytest.raises(logic.InvalidTextsError) as refused:
        logic.classify_texts(serving_store.get(), ["card?", "  ", "rate?", "\u3000"], top_k=2)

    assert [item["index"] for item in refused.value.details["items"]] == [1, 3]
    response = error_response(refused.value)
    assert response.status_code == 422
    assert json.loads(response.body)["error"]["code"] == "invalid_text"


def test_prediction_ids_are_unique_and_fit_the_feedback_pattern(serving_store) -> None:
    import re

    from categorizer.api.schemas import PREDICTION_ID_PATTERN

    items = logic.classify_texts(serving_store.get(), ["card?"] * 50, top_k=1)

    assert len({item.prediction_id for item in items}) == 50
    assert all(re.fullmatch(PREDICTION_ID_PATTERN, item.prediction_id) for item in items)


def test_feedback_ids_are_deterministic_and_scoped_to_the_user() -> None:
    by_prediction = logic.feedback_id_for("user-a", prediction_id="p1", idempotency_key=None)

    assert by_prediction == logic.feedback_id_for("user-a", prediction_id="p1", idempotency_key=None)
    assert by_prediction != logic.feedback_id_for("user-b", prediction_id="p1", idempotency_key=None)
    with_key = logic.feedback_id_for("user-a", prediction_id="p1", idempotency_key="k")
    assert with_key != by_prediction
    assert with_key == logic.feedback_id_for("user-a", prediction_id="p2", idempotency_key="k")
    assert with_key != logic.feedback_id_for("user-b", prediction_id="p1", idempotency_key="k")


@pytest.mark.parametrize(("exc", "status", "code"), [
    (AuthenticationError("token has expired"), 401, "unauthenticated"),
    (PermissionDeniedError("categorizer/feedback"), 403, "forbidden"),
    (logic.FeedbackConflictError("f1"), 409, "idempotency_conflict"),
    (BodyTooLargeError(10), 413, "body_too_large"),
    (logic.UnknownLabelError({"correct_label": "x"}, ["a", "b"]), 422, "unknown_label"),
    (AuthUnavailableError("no keys"), 503, "auth_unavailable"),
    (FeedbackStoreError("down"), 503, "feedback_store_unavailable"),
    (ModelUnavailableError("no model"), 503, "model_unavailable"),
    (RuntimeError("bug"), 500, "internal_error"),
])
def test_every_domain_error_has_one_status_and_code(exc: Exception, status: int, code: str) -> None:
    response = error_response(exc)

    assert response.status_code == status
    body = json.loads(response.body)
    assert body["error"]["code"] == code
    assert set(body["error"]) == {"code", "message", "details"}
    assert (type(exc) in ERROR_STATUS) == (status != 500)


@pytest.mark.parametrize(("event", "prefix"), [
    ({"requestContext": {"stage": "prod", "path": "/prod/v1/classify"}, "path": "/v1/classify"}, "/prod"),
    ({"version": "2.0", "rawPath": "/prod/v1/classify",
      "requestContext": {"stage": "prod", "http": {"path": "/prod/v1/classify"}}}, "/prod"),
    ({"version": "2.0", "rawPath": "/v1/classify",
      "requestContext": {"stage": "$default", "http": {"path": "/v1/classify"}}}, ""),
    # a custom domain: the client's path carries no stage
    ({"requestContext": {"stage": "prod", "path": "/v1/classify"}, "path": "/v1/classify"}, ""),
    ({"requestContext": {"stage": "prod", "path": "/production/v1"}, "path": "/v1"}, ""),
])
def test_stage_prefix_is_taken_only_from_what_the_client_called(event: dict, prefix: str) -> None:
    assert stage_prefix(event) == prefix
