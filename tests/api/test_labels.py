"""/v1/labels through the real Lambda handler (REST v1 and HTTP API v2 events), real tokens, moto S3.

The catalogue lives in the test's own model bucket; the tiny bundle (card_arrival, exchange_rate,
lost_or_stolen_card) serves. Changes are recorded at once and made live only by a promotion
(tests/learning/test_catalogue.py), so here the champion keeps its own labels throughout.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

import boto3
import pytest

from categorizer.contract import names
from tests.api.conftest import REGION, Api, Cognito, assert_error

EXAMPLES = [f"How do I pay off my home loan early, question {i}?" for i in range(12)]


def _admin(cognito: Cognito) -> str:
    return cognito.machine_token((names.CLASSIFY_SCOPE, names.FEEDBACK_SCOPE, names.LABELS_SCOPE))


def _post(api: Api, token: str, path: str, body: dict):
    """A JSON POST to `path` (the feedback event template carries the JSON content type)."""
    return api.call("feedback", token=token, body=body, path=path, method="POST")


def _propose(api: Api, token: str, name: str = "mortgage", **changes) -> object:
    body = {"name": name, "description": "Home loans", "examples": EXAMPLES, **changes}
    return _post(api, token, "/v1/labels", body)


def _labels(api: Api, token: str) -> dict:
    response = api.call("labels", token=token, path="/v1/labels", method="GET")
    assert response.status == 200, response.body
    return response.json


def _by_name(listing: dict) -> dict[str, dict]:
    return {label["name"]: label for label in listing["labels"]}


def test_before_any_change_the_champion_s_labels_are_the_catalogue(api: Api, api_env: Cognito, serving_store) -> None:
    listing = _labels(api, api_env.access_token("bob"))  # classify permission is enough to read

    assert listing["revision"] == 0 and listing["notices"] == []
    assert listing["champion"] == serving_store.get().version
    assert sorted(_by_name(listing)) == ["card_arrival", "exchange_rate", "lost_or_stolen_card"]
    assert {label["status"] for label in listing["labels"]} == {"active"}
    assert_error(api.call("labels", token=api_env.access_token("carol"), path="/v1/labels", method="GET"), 403,
                 "forbidden")


def test_only_the_labels_scope_or_the_admins_group_may_propose(api: Api, api_env: Cognito) -> None:
    assert_error(_propose(api, api_env.access_token("alice")), 403, "forbidden")  # classify + feedback only
    assert_error(_propose(api, api_env.machine_token()), 403, "forbidden")

    by_scope = _propose(api, _admin(api_env))
    assert by_scope.status == 201, by_scope.body
    assert by_scope.json["label"] == {"name": "mortgage", "description": "Home loans", "status": "proposed",
                                      "examples": 12, "feedback": 0, "replaced_by": None, "pending": None}
    by_group = _propose(api, api_env.access_token("dana"), name="savings goals")
    assert by_group.status == 201, by_group.body

    listing = _labels(api, api_env.access_token("bob"))
    assert listing["revision"] == 3  # seeded from the champion, then two additions
    assert _by_name(listing)["savings goals"]["status"] == "proposed"


def test_bad_proposals_are_refused_with_a_reason(api: Api, api_env: Cognito) -> None:
    token = _admin(api_env)
    assert _propose(api, token).status == 201
    duplicate = assert_error(_propose(api, token, name="MORTGAGE"), 409, "label_exists")
    assert duplicate["details"]["existing"] == "mortgage"
    assert_error(_propose(api, token, name="Card_Arrival"), 409, "label_exists")  # against the champion's too
    assert_error(_propose(api, token, name="pets", examples=EXAMPLES[:9]), 422, "validation_error")
    same_text = assert_error(_propose(api, token, name="pets", examples=[EXAMPLES[0]] * 10), 409, "label_conflict")
    assert "at least 10 different" in same_text["message"]
    for bad in ("", " leading", "semi;colon", "x" * 65, "percent%"):
        assert_error(_propose(api, token, name=bad), 422, "validation_error")


def test_feedback_accepts_a_proposed_label_and_refuses_a_retired_one_naming_its_replacement(
        api: Api, api_env: Cognito) -> None:
    token = _admin(api_env)
    assert _propose(api, token).status == 201
    before = _by_name(_labels(api, token))["mortgage"]["feedback"]  # the feedback table is the session's
    correction = {"prediction_id": uuid.uuid4().hex, "text": "Can I overpay my mortgage this month?",
                  "predicted_label": "exchange_rate", "correct_label": "mortgage"}
    assert api.call("feedback", token=token, body=correction).status == 201

    retired = _post(api, token, "/v1/labels/exchange_rate/retire",
                    {"replaced_by": "card_arrival", "reason": "nobody asks about rates"})
    assert retired.status == 200, retired.body
    assert retired.json["label"]["pending"] == "retire 'exchange_rate', replaced by 'card_arrival'"
    refused = assert_error(api.call("feedback", token=token, body={
        **correction, "prediction_id": uuid.uuid4().hex, "correct_label": "exchange_rate"}), 422, "retired_label")
    assert refused["details"] == {"label": "exchange_rate", "replaced_by": "card_arrival"}
    assert "card_arrival" in refused["message"]
    # Until the next promotion the champion serves its own labels: still active, the change pending.
    listing = _by_name(_labels(api, token))
    assert listing["exchange_rate"]["status"] == "active"
    assert listing["mortgage"]["feedback"] == before + 1


def test_names_with_slashes_and_spaces_reach_their_route_encoded_or_not(api: Api, api_env: Cognito) -> None:
    token = _admin(api_env)
    assert _propose(api, token, name="cards / delivery").status == 201
    # REST APIs hand the Lambda the path still percent-encoded; HTTP APIs decode it: both reach the label.
    encoded = quote("cards / delivery", safe="")
    path_name = encoded if api.kind == "rest_v1" else "cards / delivery"
    renamed = _post(api, token, f"/v1/labels/{path_name}/rename", {"to": "delivery?"})
    assert renamed.status == 200, renamed.body
    assert renamed.json["label"]["name"] == "cards / delivery"
    assert renamed.json["label"]["pending"] == "rename 'cards / delivery' to 'delivery?'"
    assert_error(_post(api, token, "/v1/labels/no%20such/merge", {"into": "card_arrival"}), 404, "label_not_found")


def test_rename_merge_and_retire_are_checked_against_the_catalogue(api: Api, api_env: Cognito) -> None:
    token = _admin(api_env)
    merge = _post(api, token, "/v1/labels/lost_or_stolen_card/merge", {"into": "card_arrival"})
    assert merge.status == 200, merge.body
    again = assert_error(_post(api, token, "/v1/labels/lost_or_stolen_card/rename", {"to": "lost"}), 409,
                         "label_conflict")
    assert "already has a change waiting" in again["message"]
    assert_error(_post(api, token, "/v1/labels/card_arrival/merge", {"into": "card_arrival"}), 409, "label_conflict")
    assert_error(_post(api, token, "/v1/labels/card_arrival/rename", {"to": "EXCHANGE_RATE"}), 409, "label_exists")


def test_two_admins_racing_both_land(api_config, moto_endpoint: str, classifier) -> None:
    """A conditional write that loses re-reads and re-applies: neither proposal is lost."""
    from categorizer.adapters.model_registry_bucket import ModelBucket, WriteConflictError
    from categorizer.registry import catalogue as cat

    bucket = ModelBucket(str(api_config.model.model_bucket),
                         boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION))
    first, second = cat.CatalogueStore(bucket), cat.CatalogueStore(bucket)
    first.update(lambda c: c or cat.seed(classifier.labels, champion=classifier.version, actor="a"))
    stale, etag = bucket.get_json_tagged(names.LABEL_CATALOGUE_KEY)
    first.update(lambda c: cat.propose(c, name="first", description="", examples=EXAMPLES, actor="a"))
    with pytest.raises(WriteConflictError):  # S3 refuses a write based on what was read before the change
        bucket.put_json_if(names.LABEL_CATALOGUE_KEY, stale, etag=etag)
    calls = []

    def second_admin(current):
        calls.append(current.revision)
        if len(calls) == 1:  # the other admin writes between our read and our write
            first.update(lambda c: cat.propose(c, name="pets", description="", examples=EXAMPLES, actor="a"))
        return cat.propose(current, name="travel", description="", examples=EXAMPLES, actor="b")

    result = second.update(second_admin)

    assert calls == [2, 3]  # the lost race re-applied the change to what the other admin stored
    assert {"pets", "travel"} <= {e.name for e in result.labels}
    assert [c.action for c in first.read().history] == ["seed", "add", "add", "add"]
