"""The review queue through the real handler: doubtful predictions are queued, reviewers claim and decide them.

Real moto DynamoDB (the table as infra creates it, with its sparse indexes), real Cognito tokens: `rita` and
`rob` are in the `reviewers` group, `alice` and `bob` are not.
"""

from __future__ import annotations

import dataclasses

import boto3
import jwt
import pytest

from categorizer.adapters.review_table import item_id_for
from categorizer.api.app import create_app
from categorizer.api.lambda_adapter import lambda_handler_for
from categorizer.contract import ReviewQueue
from categorizer.wiring import Lazy
from tests.api.conftest import REGION, Api, Cognito, assert_error, services_for

JSON = {"Content-Type": "application/json"}
DOUBTFUL = ["card", "rate", "hello there", "my thing"]  # the tiny model is unsure of one-word texts
CONFIDENT = ["When will my new card arrive?", "What exchange rate do you use?"]  # texts it was trained on


def _sub(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["sub"]


def _classify(api: Api, cognito: Cognito, texts: list[str]) -> list[dict]:
    response = api.call("classify", token=cognito.access_token("alice"), body={"texts": texts})
    assert response.status == 200, response.body
    return response.json["predictions"]


def _list(api: Api, cognito: Cognito, user: str = "rita", **query: str) -> dict:
    response = api.call("review", token=cognito.access_token(user), query=query)
    assert response.status == 200, response.body
    return response.json


def _claim(api: Api, cognito: Cognito, item_id: str, user: str = "rita"):
    return api.call("review", token=cognito.access_token(user), method="POST", path=f"/v1/review/{item_id}/claim",
                    body={}, headers=JSON)


def _decide(api: Api, cognito: Cognito, item_id: str, body: dict, user: str = "rita"):
    return api.call("review", token=cognito.access_token(user), method="POST", path=f"/v1/review/{item_id}",
                    body=body, headers=JSON)


def _feedback_items(moto_endpoint: str, table: str, feedback_id: str) -> list[dict]:
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name=REGION)
    return dynamodb.scan(TableName=table, FilterExpression="feedback_id = :f",
                         ExpressionAttributeValues={":f": {"S": feedback_id}})["Items"]


def test_predictions_that_need_review_are_queued_once_per_text(review_api: Api, api_env: Cognito):
    predictions = _classify(review_api, api_env, DOUBTFUL)
    doubtful = [text for text, p in zip(DOUBTFUL, predictions, strict=True) if p["needs_review"]]
    assert doubtful, "the tiny model should doubt short texts"
    _classify(review_api, api_env, [f"  {doubtful[0].upper()} "])  # the same text, normalised

    page = _list(review_api, api_env, limit="100")

    assert {item["text"] for item in page["items"]} == set(doubtful) and page["next"] is None
    card = next(item for item in page["items"] if item["item_id"] == item_id_for(doubtful[0]))
    assert card["seen"] == 2
    source = {k: v for k, v in card["source"].items() if v is not None}
    assert source == {"kind": "api", "caller": _sub(api_env.access_token("alice"))}
    assert card["top_k"][0]["label"] == card["label"]
    confidences = [item["confidence"] for item in page["items"]]
    assert confidences == sorted(confidences)  # uncertain first by default


def test_orders_and_pages_cover_every_open_item_once(review_api: Api, api_env: Cognito):
    _classify(review_api, api_env, DOUBTFUL)
    everything = {item["item_id"] for item in _list(review_api, api_env, limit="100")["items"]}
    seen, cursor = [], None
    while True:
        page = _list(review_api, api_env, limit="1", order="recent", **({"cursor": cursor} if cursor else {}))
        seen += [item["item_id"] for item in page["items"]]
        cursor = page["next"]
        if not cursor:
            break
    assert sorted(seen) == sorted(everything) and len(seen) == len(set(seen))
    novel = _list(review_api, api_env, order="novel", limit="100")["items"]
    assert [i["novelty"] for i in novel] == sorted((i["novelty"] for i in novel), reverse=True)


def test_a_reviewer_claims_corrects_and_the_decision_becomes_review_feedback(
        review_api: Api, api_env: Cognito, moto_endpoint: str, feedback_table_name: str):
    _classify(review_api, api_env, DOUBTFUL)
    item = _list(review_api, api_env)["items"][0]
    other = next(s["label"] for s in item["top_k"] if s["label"] != item["label"])

    claimed = _claim(review_api, api_env, item["item_id"])
    assert claimed.status == 200 and claimed.json["lease_until"] > 0
    held = _claim(review_api, api_env, item["item_id"], user="rob")
    assert assert_error(held, 409, "review_conflict")["details"] == {"reason": "held"}
    assert _claim(review_api, api_env, item["item_id"]).status == 200  # the holder may claim again
    not_yours = _decide(review_api, api_env, item["item_id"], {"decision": "accept"}, user="rob")
    assert assert_error(not_yours, 409, "review_conflict")["details"] == {"reason": "not_held"}

    decided = _decide(review_api, api_env, item["item_id"], {"decision": "correct", "label": other})
    replay = _decide(review_api, api_env, item["item_id"], {"decision": "correct", "label": other})

    assert decided.status == 200 and decided.json["label"] == other
    assert replay.status == 200 and replay.json["feedback_id"] == decided.json["feedback_id"]
    rows = _feedback_items(moto_endpoint, feedback_table_name, decided.json["feedback_id"])
    assert len(rows) == 1
    row = rows[0]
    assert (row["source"]["S"], row["correct_label"]["S"], row["predicted_label"]["S"]) == ("review", other,
                                                                                         item["label"])
    assert row["user_sub"]["S"] == _sub(api_env.access_token("rita"))
    assert item["item_id"] not in {i["item_id"] for i in _list(review_api, api_env, limit="100")["items"]}
    changed_mind = _decide(review_api, api_env, item["item_id"], {"decision": "accept"})
    assert assert_error(changed_mind, 409, "review_conflict")["details"] == {"reason": "decided"}
    # A decided text is not queued again when the model still doubts it.
    _classify(review_api, api_env, [item["text"]])
    assert item["item_id"] not in {i["item_id"] for i in _list(review_api, api_env, limit="100")["items"]}


def test_accept_records_the_predicted_label_and_skip_returns_the_item(review_api: Api, api_env: Cognito,
                                                                    moto_endpoint: str, feedback_table_name: str):
    _classify(review_api, api_env, DOUBTFUL)
    first, second = _list(review_api, api_env)["items"][:2]

    assert _claim(review_api, api_env, first["item_id"]).status == 200
    accepted = _decide(review_api, api_env, first["item_id"], {"decision": "accept"})
    assert accepted.status == 200 and accepted.json["label"] == first["label"]
    (row,) = _feedback_items(moto_endpoint, feedback_table_name, accepted.json["feedback_id"])
    assert row["correct_label"]["S"] == row["predicted_label"]["S"] == first["label"]

    assert _claim(review_api, api_env, second["item_id"]).status == 200
    skipped = _decide(review_api, api_env, second["item_id"], {"decision": "skip"})
    assert skipped.status == 200 and skipped.json["feedback_id"] is None
    assert second["item_id"] in {i["item_id"] for i in _list(review_api, api_env, limit="100")["items"]}
    assert _claim(review_api, api_env, second["item_id"], user="rob").status == 200  # free for someone else


@pytest.mark.parametrize(("body", "code"), [
    ({}, "validation_error"),
    ({"decision": "maybe"}, "validation_error"),
    ({"decision": "correct"}, "invalid_decision"),
    ({"decision": "correct", "label": "x" * 201}, "validation_error"),
    ({"decision": "correct", "label": "no_such_label"}, "unknown_label"),
    ({"decision": "skip", "label": "card_arrival"}, "invalid_decision"),
    ({"decision": "correct", "label": "card_arrival", "extra": 1}, "validation_error"),
])
def test_bad_decisions_are_clear_422s(review_api: Api, api_env: Cognito, body: dict, code: str):
    _classify(review_api, api_env, DOUBTFUL)
    item = _list(review_api, api_env)["items"][0]
    assert _claim(review_api, api_env, item["item_id"]).status == 200

    assert_error(_decide(review_api, api_env, item["item_id"], body), 422, code)


def test_unknown_items_foreign_ids_people_without_the_group_and_bad_cursors(review_api: Api, api_env: Cognito):
    unknown = "0" * 32
    assert_error(_claim(review_api, api_env, unknown), 404, "not_found")
    assert_error(_decide(review_api, api_env, unknown, {"decision": "accept"}), 404, "not_found")
    assert_error(_claim(review_api, api_env, "../../etc"), 404)
    assert_error(_claim(review_api, api_env, "Z" * 32), 422, "validation_error")
    for user in ("alice", "bob"):
        assert_error(review_api.call("review", token=api_env.access_token(user)), 403, "forbidden")
    assert_error(review_api.call("review", token=api_env.access_token("rita"), query={"cursor": "bm90LWEtY3Vyc29y"}),
                 422, "invalid_cursor")
    assert_error(review_api.call("review", token=api_env.access_token("rita"), query={"order": "oldest"}), 422,
                 "validation_error")


def test_the_queue_client_is_made_by_the_first_prediction_that_needs_review(
        review_settings, serving_store, review_api: Api, api_env: Cognito, lambda_context):
    services = services_for(review_settings, serving_store)
    made: list[str] = []
    counted = dataclasses.replace(services, review=Lazy(lambda: made.append("made") or services.review.get()))
    api = Api(lambda_handler_for(create_app(review_settings, services=counted)), lambda_context, "rest_v1")

    sure = _classify(api, api_env, CONFIDENT)
    assert not any(p["needs_review"] for p in sure) and made == []  # a cold start's usual first request
    unsure = _classify(api, api_env, DOUBTFUL)
    assert any(p["needs_review"] for p in unsure) and made == ["made"]
    _classify(api, api_env, DOUBTFUL)
    assert made == ["made"]  # kept
    queued = {item["text"] for item in _list(review_api, api_env, limit="100")["items"]}
    assert queued == {t for t, p in zip(DOUBTFUL, unsure, strict=True) if p["needs_review"]}


def test_a_queue_outage_never_fails_a_classification(api_config, serving_store, lambda_context, api_env: Cognito):
    settings = dataclasses.replace(api_config, review=ReviewQueue(review_table="no-such-table"))
    api = Api(lambda_handler_for(create_app(settings, services=services_for(settings, serving_store))),
              lambda_context, "rest_v1")

    predictions = _classify(api, api_env, DOUBTFUL)

    assert len(predictions) == len(DOUBTFUL)
    assert_error(api.call("review", token=api_env.access_token("rita")), 503, "review_queue_unavailable")


def test_an_admin_proposes_a_new_label_from_the_item_and_reviewers_assign_items_to_it(
        review_api: Api, api_env: Cognito, moto_endpoint: str, feedback_table_name: str):
    _classify(review_api, api_env, DOUBTFUL)
    first, second = _list(review_api, api_env, user="ada")["items"][:2]
    propose = {"name": f"pet insurance {first['item_id'][:6]}", "description": "Insuring pets"}

    def _propose(item_id: str, user: str):
        return review_api.call("review", token=api_env.access_token(user), method="POST",
                               path=f"/v1/review/{item_id}/propose", body=propose, headers=JSON)

    assert_error(_propose(first["item_id"], "ada"), 409, "review_conflict")  # claim it first
    assert _claim(review_api, api_env, first["item_id"], user="rita").status == 200
    assert_error(_propose(first["item_id"], "rita"), 403, "forbidden")  # a reviewer who is no admin
    assert_error(_claim(review_api, api_env, first["item_id"], user="ada"), 409, "review_conflict")
    assert _decide(review_api, api_env, first["item_id"], {"decision": "skip"}, user="rita").status == 200

    assert _claim(review_api, api_env, first["item_id"], user="ada").status == 200
    proposed = _propose(first["item_id"], "ada")

    assert proposed.status == 200, proposed.body
    assert (proposed.json["decision"], proposed.json["label"]) == ("correct", propose["name"])
    labels = review_api.call("labels", token=api_env.access_token("ada")).json["labels"]
    entry = next(label for label in labels if label["name"] == propose["name"])
    assert (entry["status"], entry["examples"]) == ("proposed", 1)
    (row,) = _feedback_items(moto_endpoint, feedback_table_name, proposed.json["feedback_id"])
    assert (row["correct_label"]["S"], row["source"]["S"]) == (propose["name"], "review")
    # Another reviewer assigns the next doubtful item to the proposed label.
    assert _claim(review_api, api_env, second["item_id"], user="rob").status == 200
    assigned = _decide(review_api, api_env, second["item_id"], {"decision": "correct", "label": propose["name"]},
                       user="rob")
    assert assigned.status == 200 and assigned.json["label"] == propose["name"]
