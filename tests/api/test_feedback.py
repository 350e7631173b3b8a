"""Feedback lands in (moto) DynamoDB exactly once: retries, idempotency keys, throttling, lost responses."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
import urllib3
from botocore.awsrequest import AWSResponse

from categorizer.adapters.feedback_table import MAX_ATTEMPTS, PARTITION_KEY
from tests.api.conftest import REGION, Api, Cognito, assert_error


def _correction(prediction_id: str | None = None, **changes) -> dict:
    body = {"prediction_id": prediction_id or uuid.uuid4().hex, "text": "When will my new card arrive?",
            "predicted_label": "exchange_rate", "correct_label": "card_arrival"}
    body.update(changes)
    return body


def _stored(moto_endpoint: str, table: str, prediction_id: str) -> list[dict]:
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name=REGION)
    items = dynamodb.scan(TableName=table, FilterExpression="prediction_id = :p",
                          ExpressionAttributeValues={":p": {"S": prediction_id}}, ConsistentRead=True)["Items"]
    return items


def test_feedback_is_stored_with_user_time_and_model_version(api: Api, api_env: Cognito, moto_endpoint: str,
                                                              feedback_table_name: str, serving_store) -> None:
    body = _correction(comment="it is about delivery")

    response = api.call("feedback", token=api_env.access_token("alice"), body=body)

    assert response.status == 201, response.body
    feedback_id = response.json["feedback_id"]
    assert "idempotent-replayed" not in response.headers
    [item] = _stored(moto_endpoint, feedback_table_name, body["prediction_id"])
    alice_sub = api_env.sign_in("alice")
    assert item[PARTITION_KEY] == {"S": f"FEEDBACK#{feedback_id}"}
    assert item["user_sub"]["S"] == json.loads(_payload(alice_sub["AccessToken"]))["sub"]
    assert item["model_version"]["S"] == serving_store.get().version
    assert item["correct_label"]["S"] == "card_arrival"
    assert item["comment"]["S"] == "it is about delivery"
    assert item["created_at"]["S"].endswith("Z")


def _payload(token: str) -> str:
    import base64

    segment = token.split(".")[1]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()


def test_same_idempotency_key_five_times_is_stored_once(api: Api, api_env: Cognito, moto_endpoint: str,
                                                        feedback_table_name: str) -> None:
    body = _correction()
    key = str(uuid.uuid4())

    responses = [api.call("feedback", token=api_env.machine_token(), body=body,
                          headers={"Idempotency-Key": key}) for _ in range(5)]

    assert [r.status for r in responses] == [201] * 5
    assert len({r.json["feedback_id"] for r in responses}) == 1
    assert [r.headers.get("idempotent-replayed") for r in responses] == [None] + ["true"] * 4
    assert len(_stored(moto_endpoint, feedback_table_name, body["prediction_id"])) == 1


def test_same_prediction_and_user_without_key_is_stored_once(api: Api, api_env: Cognito, moto_endpoint: str,
                                                             feedback_table_name: str) -> None:
    body = _correction()

    responses = [api.call("feedback", token=api_env.access_token("alice"), body=body) for _ in range(5)]

    assert {r.status for r in responses} == {201}
    assert len({r.json["feedback_id"] for r in responses}) == 1
    assert len(_stored(moto_endpoint, feedback_table_name, body["prediction_id"])) == 1


def test_two_users_correcting_one_prediction_are_two_feedbacks(api: Api, api_env: Cognito, moto_endpoint: str,
                                                               feedback_table_name: str) -> None:
    body = _correction()

    first = api.call("feedback", token=api_env.access_token("alice"), body=body)
    second = api.call("feedback", token=api_env.machine_token(), body=body,
                      headers={"Idempotency-Key": uuid.uuid4().hex})

    assert first.status == second.status == 201
    assert first.json["feedback_id"] != second.json["feedback_id"]
    assert len(_stored(moto_endpoint, feedback_table_name, body["prediction_id"])) == 2


def test_reusing_a_key_for_different_content_is_409_and_keeps_the_first(
        api: Api, api_env: Cognito, moto_endpoint: str, feedback_table_name: str) -> None:
    body = _correction()
    key = str(uuid.uuid4())
    assert api.call("feedback", token=api_env.machine_token(), body=body,
                    headers={"Idempotency-Key": key}).status == 201

    changed = api.call("feedback", token=api_env.machine_token(), body={**body, "correct_label": "lost_or_stolen_card"},
                       headers={"Idempotency-Key": key})

    assert_error(changed, 409, "idempotency_conflict")
    [item] = _stored(moto_endpoint, feedback_table_name, body["prediction_id"])
    assert item["correct_label"]["S"] == "card_arrival"


def test_the_export_keeps_the_latest_correction_of_a_prediction(api: Api, api_env: Cognito,
                                                                feedback_table_name: str) -> None:
    from categorizer.adapters.feedback_scan import FeedbackScan
    from categorizer.registry.feedback_export import latest_per_prediction

    prediction_id = uuid.uuid4().hex
    for label in ("exchange_rate", "lost_or_stolen_card"):
        response = api.call("feedback", token=api_env.machine_token(), headers={"Idempotency-Key": uuid.uuid4().hex},
                            body=_correction(prediction_id, correct_label=label))
        assert response.status == 201

    records = [r for r in FeedbackScan(feedback_table_name).all_records() if r.prediction_id == prediction_id]
    (latest,) = latest_per_prediction(records)

    assert len(records) == 2
    assert latest.correct_label == "lost_or_stolen_card"


def test_unknown_labels_are_refused_with_the_valid_ones(api: Api, api_env: Cognito, moto_endpoint: str,
                                                        feedback_table_name: str) -> None:
    body = _correction(correct_label="card_lost")

    error = assert_error(api.call("feedback", token=api_env.machine_token(), body=body), 422, "unknown_label")

    assert error["details"]["valid_labels"] == ["card_arrival", "exchange_rate", "lost_or_stolen_card"]
    assert error["details"]["unknown"] == {"correct_label": "card_lost"}
    assert _stored(moto_endpoint, feedback_table_name, body["prediction_id"]) == []


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "ünïcode"])
def test_malformed_idempotency_keys_are_422(rest_api: Api, api_env: Cognito, key: str) -> None:
    response = rest_api.call("feedback", token=api_env.machine_token(), body=_correction(),
                             headers={"Idempotency-Key": key})

    assert_error(response, 422, "validation_error")


def _throttled_response(request) -> AWSResponse:
    body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                       "message": "The level of configured provisioned throughput for the table was exceeded."})
    return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0"},
                       _Raw(body.encode()))


class _Raw:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs):
        yield self._data


def test_throttled_writes_are_retried_and_stored_once(rest_api: Api, api_services, api_env: Cognito, moto_endpoint: str,
                                                      feedback_table_name: str) -> None:
    """DynamoDB answers ProvisionedThroughputExceeded twice; botocore's standard retry mode gets through."""
    client = api_services.feedback.get().client
    attempts = []

    def throttle_twice(request, **_kwargs):
        attempts.append(request.url)
        return _throttled_response(request) if len(attempts) <= 2 else None

    client.meta.events.register("before-send.dynamodb.PutItem", throttle_twice)
    body = _correction()
    try:
        response = rest_api.call("feedback", token=api_env.machine_token(), body=body)
    finally:
        client.meta.events.unregister("before-send.dynamodb.PutItem", throttle_twice)

    assert response.status == 201, response.body
    assert len(attempts) == 3
    assert len(_stored(moto_endpoint, feedback_table_name, body["prediction_id"])) == 1


def test_a_write_whose_answer_was_lost_is_not_stored_twice(rest_api: Api, api_services, api_env: Cognito,
                                                           moto_endpoint: str,
                                                           feedback_table_name: str) -> None:
    """The first PutItem reaches DynamoDB but its response is lost (500); the retry finds the item there."""
    client = api_services.feedback.get().client
    http = urllib3.PoolManager()
    attempts = []

    def deliver_then_lose_the_answer(request, **_kwargs):
        attempts.append(request.url)
        if len(attempts) > 1:
            return None
        delivered = http.request(request.method, request.url, body=request.body, headers=dict(request.headers))
        assert delivered.status == 200
        return AWSResponse(request.url, 500, {"Content-Type": "application/x-amz-json-1.0"},
                           _Raw(b'{"__type": "InternalServerError", "message": "lost"}'))

    client.meta.events.register("before-send.dynamodb.PutItem", deliver_then_lose_the_answer)
    body = _correction()
    try:
        response = rest_api.call("feedback", token=api_env.machine_token(), body=body)
    finally:
        client.meta.events.unregister("before-send.dynamodb.PutItem", deliver_then_lose_the_answer)

    assert response.status == 201, response.body
    assert response.headers["idempotent-replayed"] == "true"
    assert len(attempts) == 2
    assert len(_stored(moto_endpoint, feedback_table_name, body["prediction_id"])) == 1


def test_a_store_that_stays_down_is_503_and_stores_nothing(rest_api: Api, api_services, api_env: Cognito,
                                                           moto_endpoint: str,
                                                           feedback_table_name: str) -> None:
    client = api_services.feedback.get().client
    attempts = []

    def always_throttle(request, **_kwargs):
        attempts.append(request.url)
        return _throttled_response(request)

    client.meta.events.register("before-send.dynamodb.PutItem", always_throttle)
    body = _correction()
    try:
        response = rest_api.call("feedback", token=api_env.machine_token(), body=body)
    finally:
        client.meta.events.unregister("before-send.dynamodb.PutItem", always_throttle)

    assert_error(response, 503, "feedback_store_unavailable")
    assert len(attempts) == MAX_ATTEMPTS
    assert _stored(moto_endpoint, feedback_table_name, body["prediction_id"]) == []


def test_feedback_metrics_count_disagreements(rest_api: Api, api_env: Cognito, capsys, log_output) -> None:
    response = rest_api.call("feedback", token=api_env.machine_token(), body=_correction())
    assert response.status == 201

    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [emf] = [line for line in emitted if "_aws" in line]
    assert emf["Feedback"] == [1.0]
    assert emf["FeedbackDisagreement"] == [1.0]
    [stored_log] = [line for line in log_output() if line.get("message") == "feedback stored"]
    assert stored_log["correlation_id"] == rest_api.last_event["requestContext"]["requestId"]
